"""Out-of-process SFT with TRL, launched by the `trained_model` asset through Dagster Pipes.

    python -m am_assets.train.sft_script SPEC.json                  # one process (CPU, 1 GPU)
    accelerate launch --num_processes 8 -m am_assets.train.sft_script ...    # multi-GPU (the asset builds this)

The spec (a JSON file given as argv[1]; the asset writes it into the staging folder) names the base model
folder, the training JSONL (TRL records from logic.to_sft_records), the output folder, the `training`
config section and the step counts. Rank 0 streams loss and learning rate to Dagster: one log line
and one custom message per logging step; the asset turns the messages into the loss-curve metadata.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from am_assets.train.logic import warmup_steps


class _StdoutLog:
    """Log sink for ranks other than 0 and for runs outside Dagster."""

    def info(self, msg: str) -> None:
        print(msg, flush=True)

    warning = info


def _pipes_context():
    if int(os.environ.get("RANK", "0")) != 0:
        return None  # one reporter: several ranks writing one Pipes message stream would interleave
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    if not PipesEnvVarParamsLoader().is_dagster_pipes_process():
        return None
    return open_dagster_pipes()


def _load_spec() -> dict:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m am_assets.train.sft_script SPEC.json")
    return json.loads(Path(sys.argv[1]).read_text())


def _drop_too_long(records: list[dict], tokenizer, max_len: int) -> tuple[list[dict], int]:
    """P3: samples longer than the maximum length are dropped, not truncated."""
    kept = []
    for r in records:
        chat = r["messages"] if "messages" in r else r["prompt"] + r["completion"]
        n = len(tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"])
        if n <= max_len:
            kept.append(r)
    return kept, len(records) - len(kept)


def train(spec: dict, log, report) -> dict:
    """Runs SFT as the spec says; `report(record)` receives every logged step. Returns a summary."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    t = spec["training"]
    out = Path(spec["output_dir"])
    tokenizer = AutoTokenizer.from_pretrained(spec["base_path"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    records = [json.loads(line) for line in Path(spec["train_file"]).read_text().splitlines() if line.strip()]
    records, dropped = _drop_too_long(records, tokenizer, t["max_seq_length"])
    if not records:
        raise ValueError(f"{spec['train_file']}: no training sample fits max_seq_length {t['max_seq_length']}")
    steps, warmup = spec["total_steps"], warmup_steps(spec["total_steps"], t["warmup_fraction"])
    log.info(f"SFT {spec['model_id']}: {len(records)} samples ({dropped} longer than {t['max_seq_length']} "
             f"tokens dropped), {steps} steps, warmup {warmup}, lr {t['learning_rate']}, "
             f"global batch {t['global_batch']}")

    args = SFTConfig(
        output_dir=str(out / "_trainer"),
        learning_rate=t["learning_rate"],
        num_train_epochs=t["epochs"],
        max_steps=t["max_steps"],
        lr_scheduler_type="cosine",  # decays to 0 after the linear warmup
        warmup_steps=warmup,
        per_device_train_batch_size=t["per_device_batch"],
        gradient_accumulation_steps=spec["grad_accumulation"],
        max_length=t["max_seq_length"],
        packing=t["packing"],
        completion_only_loss=True if t["assistant_only_loss"] else None,
        gradient_checkpointing=t["gradient_checkpointing"],
        bf16=t["bf16"],
        seed=t["seed"],
        data_seed=t["seed"],
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    model = AutoModelForCausalLM.from_pretrained(
        spec["base_path"], dtype=torch.bfloat16 if t["bf16"] else torch.float32)
    history: list[dict] = []
    started = time.monotonic()

    class Progress(TrainerCallback):
        def on_log(self, _args, state, _control, logs=None, **_kw):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            rec = {"step": state.global_step, "loss": float(logs["loss"]),
                   "learning_rate": float(logs.get("learning_rate", 0.0)), "epoch": logs.get("epoch"),
                   "elapsed_s": round(time.monotonic() - started, 2)}
            history.append(rec)
            log.info(f"step {rec['step']}/{state.max_steps}: loss {rec['loss']:.4f} lr {rec['learning_rate']:.3g}")
            report(rec)

    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(records),
                         processing_class=tokenizer, callbacks=[Progress()])
    result = trainer.train()
    trainer.save_model(str(out))
    summary = {
        "model_id": spec["model_id"], "train_samples": len(records), "dropped_too_long": dropped,
        "steps": int(result.global_step), "final_loss": history[-1]["loss"] if history else None,
        "train_loss": float(result.training_loss), "train_runtime_s": result.metrics.get("train_runtime"),
        "samples_per_s": result.metrics.get("train_samples_per_second"), "warmup_steps": warmup,
        "history": history,
    }
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out))
        (out / "train_log.json").write_text(json.dumps(summary, indent=1))
    return summary


def main() -> None:
    spec = _load_spec()  # every rank reads the same file; only rank 0 talks to Dagster
    pipes = _pipes_context()
    if pipes is None:
        train(spec, _StdoutLog(), lambda rec: None)
        return
    with pipes:
        summary = train(spec, pipes.log, pipes.report_custom_message)
        pipes.report_custom_message({"summary": {k: v for k, v in summary.items() if k != "history"}})


if __name__ == "__main__":
    main()
