"""faiss kNN over L2-normalized embeddings (inner product = cosine).

Exact `IndexFlatIP` up to `exact_max` vectors; above, an approximate index: IVF (scalar-quantized
8-bit codes, a quarter of the float memory) or HNSW.
"""

from __future__ import annotations

import math
from typing import Callable

import faiss
import numpy as np


def build_index(vectors: np.ndarray, exact_max: int, kind: str = "ivf", nprobe: int = 16, seed: int = 0):
    """An inner-product index holding `vectors` (float32, normalized rows)."""
    n, d = vectors.shape
    if n <= exact_max:
        index = faiss.IndexFlatIP(d)
        index.add(vectors)
        return index
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        index.hnsw.efSearch = max(64, 4 * nprobe)
        index.add(vectors)
        return index
    nlist = int(min(max(64, 4 * math.sqrt(n)), n // 39))  # faiss wants >= 39 training points per cell
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10  # k-means on normalized text embeddings converges fast; training dominated the run time
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    train = vectors[np.sort(rng.choice(n, size=min(n, nlist * 40), replace=False))]
    index.train(train)
    del train
    for start in range(0, n, 200_000):  # bounded temporary memory while encoding
        index.add(vectors[start:start + 200_000])
    index.nprobe = nprobe
    return index


def search(index, vectors: np.ndarray, rows: np.ndarray, k: int, batch: int = 20_000,
           progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, ids) of the k nearest stored vectors for each of vectors[rows], in batches
    (gathering the rows batch by batch: a full copy of 1M x 384 floats would be another 1.5 GB)."""
    k = max(1, min(k, index.ntotal))
    sims = np.empty((len(rows), k), dtype=np.float32)
    ids = np.empty((len(rows), k), dtype=np.int64)
    for start in range(0, len(rows), batch):
        s, i = index.search(np.ascontiguousarray(vectors[rows[start:start + batch]]), k)
        sims[start:start + batch], ids[start:start + batch] = s, i
        if progress is not None:
            progress(min(start + batch, len(rows)), len(rows))
    return sims, ids


def similar_pairs(vectors: np.ndarray, query_rows: np.ndarray, threshold: float, k: int, exact_max: int,
                  kind: str = "ivf", nprobe: int = 16,
                  progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (a, b, cosine) with cosine >= threshold between rows `query_rows` and all of `vectors`.

    Self-matches are dropped; each unordered pair appears once (a < b).
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if len(vectors) < 2 or len(query_rows) == 0:
        return empty
    index = build_index(vectors, exact_max, kind, nprobe)
    sims, ids = search(index, vectors, query_rows, k + 1, progress=progress)
    src = np.repeat(query_rows.astype(np.int64), sims.shape[1])
    dst, sim = ids.ravel(), sims.ravel()
    keep = (dst >= 0) & (dst != src) & (sim >= threshold)
    a, b, sim = src[keep], dst[keep], sim[keep]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    if len(lo) == 0:
        return empty
    pairs = np.unique(np.stack([lo, hi], axis=1), axis=0, return_index=True)
    (uniq, first) = pairs
    return uniq[:, 0], uniq[:, 1], sim[first].astype(np.float32)
