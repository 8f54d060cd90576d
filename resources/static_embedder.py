"""A model2vec static embedder distilled OFFLINE from the packaged all-MiniLM-L6-v2.

Static embeddings are a token-embedding lookup plus mean pooling: no transformer forward pass, so
they embed tens of thousands of texts per second on a CPU (benchmarks/dedup_recall.py). model2vec's
`distill` runs the MiniLM over its own vocabulary once (about 30 s on 2 cores) and reduces the result
with PCA; nothing is downloaded. The folder is cached under the models folder (like the converted
teacher, resources/models.py) and built once: a build writes a private temp folder and renames it
into place, so parallel processes never see half a model and need no lock (the loser of the rename
race drops its copy).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

from resources.models import models_root

PCA_DIMS = 256
DISTILLED_NAME = f"model2vec-all-MiniLM-L6-v2-pca{PCA_DIMS}"
_log = logging.getLogger(__name__)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def distill_minilm(out: Path, source: Path) -> Path:
    """Distill `source` (a local sentence-transformers folder) into a model2vec folder at `out`."""
    _offline()
    from model2vec.distill import distill

    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        model = distill(str(source), pca_dims=PCA_DIMS, device="cpu")
        model.save_pretrained(str(tmp))
        try:
            tmp.rename(out)  # atomic; fails when another process renamed its copy first
        except OSError:
            if not (out / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def distilled_minilm_path(root: Path | None = None) -> Path:
    """The distilled MiniLM folder, built on first use."""
    from resources.embedder import packaged_model_path

    out = Path(root or models_root()) / DISTILLED_NAME
    if not (out / "config.json").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        _log.info("distilling a model2vec static embedder from the packaged all-MiniLM-L6-v2 into %s (once)", out)
        distill_minilm(out, packaged_model_path())
    return out


def resolve_static_path(model: str, default_names: tuple[str, ...]) -> Path:
    """`model` is the default name (-> the distilled MiniLM) or a local model2vec folder."""
    if model in default_names:
        return distilled_minilm_path()
    path = Path(model).expanduser().resolve()
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise FileNotFoundError(f"dedup.embedder.model: {path} is not a local model2vec folder "
                                "(config.json + *.safetensors); leave `model` at its default to use the "
                                "model2vec copy distilled from the packaged all-MiniLM-L6-v2")
    return path


def static_embedder_id(path: Path) -> str:
    """Cache key: folder name + hash of its config and weight size (like embedder_id)."""
    h = hashlib.blake2b(digest_size=6)
    for f in sorted(path.glob("*")):
        if f.is_file() and f.suffix in (".json", ".safetensors"):
            h.update(f.name.encode())
            h.update(b"" if f.suffix != ".safetensors" else str(f.stat().st_size).encode())
            if f.name == "config.json":  # minus the tokenizer's source path, which differs per machine
                cfg = {k: v for k, v in json.loads(f.read_text()).items() if k != "tokenizer_name"}
                h.update(json.dumps(cfg, sort_keys=True).encode())
    return f"{path.name}-{h.hexdigest()}"


def load_static(path: Path):
    _offline()
    from model2vec import StaticModel

    return StaticModel.from_pretrained(str(path), normalize=True, force_download=False)
