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


def _unique_edges(src: np.ndarray, dst: np.ndarray, sim: np.ndarray, threshold: float) -> tuple:
    """Edges (a < b, cosine) above the threshold, self-matches and missing ids (-1) dropped, each pair once."""
    keep = (dst >= 0) & (dst != src) & (sim >= threshold)
    a, b, sim = src[keep], dst[keep], sim[keep]
    if len(a) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    uniq, first = np.unique(np.stack([lo, hi], axis=1), axis=0, return_index=True)
    return uniq[:, 0], uniq[:, 1], sim[first].astype(np.float32)


def _block_search(vectors: np.ndarray, query_rows: np.ndarray, blocks: np.ndarray, k: int, exact_max: int,
                  kind: str, nprobe: int, progress: Callable[[int, int], None] | None) -> tuple:
    """(src, dst, sim) of the k nearest texts *of the same block* for each query row.

    Blocks are the number sets (`nearexact.number_blocks`): with `same_numbers` on, an edge between
    two blocks is dropped anyway, so searching across blocks wastes time and lets number variants of a
    template (often closer than the paraphrase) fill the k slots. Two-text blocks are one dot product
    (vectorized); larger ones an exact `faiss.knn`, or the approximate index above `exact_max`."""
    n = len(vectors)
    is_query = np.zeros(n, bool)
    is_query[query_rows] = True
    order = np.argsort(blocks, kind="stable")
    sorted_blocks = blocks[order]
    starts = np.flatnonzero(np.r_[True, sorted_blocks[1:] != sorted_blocks[:-1]])
    sizes = np.diff(np.r_[starts, n])
    queries_in = np.add.reduceat(is_query[order].astype(np.int64), starts)
    todo = (sizes >= 2) & (queries_in > 0)
    two = starts[todo & (sizes == 2)]
    x, y = order[two], order[two + 1]
    parts = [(x, y, np.einsum("ij,ij->i", vectors[x], vectors[y]))]
    done, total = len(two), int(queries_in[todo].sum())
    for start, size in zip(starts[todo & (sizes > 2)].tolist(), sizes[todo & (sizes > 2)].tolist()):
        members = order[start:start + size]
        q = members[is_query[members]]
        kk = min(k + 1, size)
        if size <= 2048:  # numpy: a faiss call per small set wakes its OpenMP team (spinning under load)
            scores = vectors[q] @ vectors[members].T
            if kk < size:
                ids = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            else:
                ids = np.tile(np.arange(size), (len(q), 1))
            sims = np.take_along_axis(scores, ids, axis=1)
        elif size <= exact_max:
            sims, ids = faiss.knn(np.ascontiguousarray(vectors[q]), np.ascontiguousarray(vectors[members]), kk,
                                  metric=faiss.METRIC_INNER_PRODUCT)
        else:
            block_vectors = np.ascontiguousarray(vectors[members])
            index = build_index(block_vectors, exact_max, kind, nprobe)
            sims, ids = search(index, block_vectors, np.flatnonzero(is_query[members]), kk)
            del index, block_vectors
        dst = np.where(ids >= 0, members[np.maximum(ids, 0)], -1)
        parts.append((np.repeat(q, kk), dst.ravel(), sims.ravel()))
        done += len(q)
        if progress is not None and (size > 10_000 or done == total):
            progress(done, total)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def similar_pairs(vectors: np.ndarray, query_rows: np.ndarray, threshold: float, k: int, exact_max: int,
                  kind: str = "ivf", nprobe: int = 16,
                  progress: Callable[[int, int], None] | None = None,
                  blocks: np.ndarray | None = None, threads: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges (a, b, cosine) with cosine >= threshold between rows `query_rows` and all of `vectors`.

    Self-matches are dropped; each unordered pair appears once (a < b). `blocks` (one id per row):
    only rows of the same block are compared (the k nearest within the block). `threads`: faiss
    OpenMP threads (0 = its default, every core).
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if len(vectors) < 2 or len(query_rows) == 0:
        return empty
    if threads:
        faiss.omp_set_num_threads(threads)
    if blocks is not None:
        src, dst, sim = _block_search(vectors, np.asarray(query_rows, np.int64), np.asarray(blocks), k, exact_max,
                                      kind, nprobe, progress)
        return _unique_edges(src.astype(np.int64), dst.astype(np.int64), sim, threshold)
    index = build_index(vectors, exact_max, kind, nprobe)
    sims, ids = search(index, vectors, query_rows, k + 1, progress=progress)
    src = np.repeat(query_rows.astype(np.int64), sims.shape[1])
    return _unique_edges(src, ids.ravel(), sims.ravel(), threshold)
