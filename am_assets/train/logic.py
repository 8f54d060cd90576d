"""Pure helpers for SFT: model keys, the training dataset, schedule numbers, the loss plot.

No dagster import: the Pipes training script (sft_script.py) runs these in a bare process too.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import polars as pl

COMPLETE_MARKER = "training_summary.json"  # written last: its presence means the folder is complete
_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")

REGISTRY_SCHEMA: dict[str, pl.DataType] = {
    "model_id": pl.String,
    "path": pl.String,
    "base": pl.String,  # the base model as configured (name or folder)
    "base_key": pl.String,  # its `model` partition key
    "config": pl.String,  # JSON of the training config
    "config_hash": pl.String,
    "data_version": pl.String,  # content hash of training_mix.messages
    "mix_delta_version": pl.Int64,
    "train_samples": pl.Int64,
    "dropped_too_long": pl.Int64,
    "steps": pl.Int64,
    "final_loss": pl.Float64,
    "run_id": pl.String,
    "created_at": pl.String,  # ISO 8601 UTC
}


def model_key(name_or_path: str) -> str:
    """A model name or folder -> a `model` partition key (no | , [ ] or spaces)."""
    name = Path(str(name_or_path).rstrip("/")).name or str(name_or_path)
    return _KEY_CHARS.sub("_", name).strip("_") or "model"


def mix_data_version(mix: pl.DataFrame) -> str:
    """Content hash of what training sees (the `messages` column), independent of row order."""
    if "messages" not in mix.columns:
        raise ValueError(f"training_mix has no `messages` column (columns: {mix.columns})")
    h = hashlib.blake2b(digest_size=8)
    for m in sorted(mix["messages"].to_list()):
        h.update(m.encode())
        h.update(b"\x00")
    return h.hexdigest()


def model_id(data_version: str, config_hash: str) -> str:
    return f"sft-{data_version[:10]}-{config_hash[:10]}"


def to_sft_records(mix: pl.DataFrame, assistant_only_loss: bool) -> list[dict[str, Any]]:
    """training_mix rows -> TRL dataset records, in a deterministic order (sorted by content).

    SmolLM2's chat template has no `{% generation %}` markers, so TRL's `assistant_only_loss` cannot
    find the assistant tokens. Instead each chat becomes a conversational prompt/completion pair
    (prompt = every turn before the last assistant turn, completion = that turn) and TRL's
    completion-only loss masks the prompt. That is P3/P4's rule for multi-turn data: loss only on the
    final response. With assistant_only_loss off the whole chat is one `messages` record.
    Raises ValueError naming the row and field for a malformed chat.
    """
    records = []
    for i, raw in enumerate(sorted(mix["messages"].to_list())):
        try:
            chat = json.loads(raw)
        except (TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"training_mix row {i}: field messages is not JSON: {e}") from None
        if not isinstance(chat, list) or not chat or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str)
                and m.get("role") in ("system", "user", "assistant") for m in chat):
            raise ValueError(f"training_mix row {i}: field messages must be a list of {{role, content}}")
        chat = [{"role": m["role"], "content": m["content"]} for m in chat]
        if chat[-1]["role"] != "assistant":
            raise ValueError(f"training_mix row {i}: field messages does not end with an assistant turn")
        if assistant_only_loss:
            records.append({"prompt": chat[:-1], "completion": chat[-1:]})
        else:
            records.append({"messages": chat})
    return records


def grad_accumulation(global_batch: int, per_device_batch: int, processes: int = 1) -> int:
    per_step = per_device_batch * processes
    if global_batch % per_step:
        raise ValueError(f"training.global_batch {global_batch} is not a multiple of "
                         f"per_device_batch x processes = {per_step}")
    return global_batch // per_step


def total_steps(n_samples: int, global_batch: int, epochs: float, max_steps: int) -> int:
    """Optimizer steps the run will take (what Trainer computes; needed for the warmup count)."""
    per_epoch = max(1, math.ceil(n_samples / global_batch))
    by_epochs = max(1, math.ceil(per_epoch * epochs))
    return by_epochs if max_steps is None or max_steps < 0 else max_steps


def warmup_steps(steps: int, fraction: float) -> int:
    """TRL 1.16's SFTConfig has no warmup_ratio: the 5% linear warmup as a step count."""
    return math.ceil(steps * fraction) if fraction > 0 else 0


def loss_curve_png(history: list[dict[str, Any]], title: str = "") -> bytes:
    """Training loss and learning rate per step, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [h for h in history if h.get("loss") is not None]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=90)
    ax.plot([h["step"] for h in pts], [h["loss"] for h in pts], color="tab:blue", marker=".")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot([h["step"] for h in pts], [h.get("learning_rate") or 0 for h in pts], color="tab:orange")
    ax2.set_ylabel("learning rate", color="tab:orange")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def launch_command(python: str, launcher: str, num_processes: int, spec_path: Path,
                   accelerate_config: Path | None = None) -> list[str]:
    """The training process command: plain python, or accelerate (multi-GPU, DeepSpeed/FSDP config)."""
    script = ["-m", "am_assets.train.sft_script", str(spec_path)]
    if launcher == "python":
        return [python, *script]
    cmd = [python, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
    if accelerate_config is not None:
        cmd += ["--config_file", str(accelerate_config)]
    return cmd + script
