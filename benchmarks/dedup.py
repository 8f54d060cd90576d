"""Dedup figures: embedding throughput of the default model, and global semantic dedup at scale.

    .venv/bin/python -m benchmarks.dedup [--embed 1000] [--sizes 100000 1000000]

Dedup runs on precomputed synthetic embeddings (384-d, like all-MiniLM-L6-v2): items drawn around
1,000 topic centres (same-topic cosine ~0.5) plus planted near-duplicates (cosine 0.93-0.99 to their
original). The same code as `unique_queries` runs: faiss kNN (exact up to dedup.exact_index_max,
IVF with 8-bit codes above), frozen-cluster union-find, representative choice. Recall = planted pairs
that end in one cluster; false-merge rate = items whose cluster holds an item of another group.
Peak memory (max RSS) includes the embeddings (1M x 384 float32 = 1.5 GB), memory-mapped from a
temporary file so that their pages are reclaimable.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._util import figure, run_measured

DIM = 384
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _normalize(v: np.ndarray) -> np.ndarray:
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def synthetic(n: int, dup_share: float = 0.05, topics: int = 1000, seed: int = 0, path: str | None = None):
    """(embeddings, group id per row, number of planted duplicates); float32, built in chunks.

    With `path` the embeddings live in a memory-mapped file: its pages are file-backed, so the kernel
    can drop them under memory pressure instead of killing the process (the machine is shared)."""
    rng = np.random.default_rng(seed)
    n_dup = int(n * dup_share)
    n_base = n - n_dup
    centres = _normalize(rng.standard_normal((topics, DIM), dtype=np.float32))
    emb = (np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, DIM)) if path
           else np.empty((n, DIM), dtype=np.float32))
    for s in range(0, n_base, 100_000):
        e = min(s + 100_000, n_base)
        t = rng.integers(0, topics, e - s)
        emb[s:e] = _normalize(centres[t] + 0.051 * rng.standard_normal((e - s, DIM), dtype=np.float32))
    originals = rng.choice(n_base, n_dup, replace=False)
    cos = rng.uniform(0.93, 0.99, n_dup).astype(np.float32)
    scale = np.sqrt((1 / cos**2 - 1) / DIM).astype(np.float32)[:, None]
    for s in range(0, n_dup, 100_000):
        e = min(s + 100_000, n_dup)
        noise = rng.standard_normal((e - s, DIM), dtype=np.float32)
        emb[n_base + s:n_base + e] = _normalize(emb[originals[s:e]] + scale[s:e] * noise)
    groups = np.concatenate([np.arange(n_base), originals])
    return emb, groups, n_dup


def dedup_run(n: int) -> dict:
    import polars as pl

    from am_assets.dedup.knn import similar_pairs
    from am_assets.dedup.logic import choose_representatives, cluster_texts
    from resources.config import DedupConfig

    cfg = DedupConfig()
    tmp = tempfile.TemporaryDirectory()
    emb, groups, n_dup = synthetic(n, path=f"{tmp.name}/emb.npy")
    t0 = time.perf_counter()
    edges = similar_pairs(emb, np.arange(n), cfg.cosine_threshold, cfg.knn, cfg.exact_index_max,
                          cfg.approx_index, cfg.nprobe)
    t_knn = time.perf_counter() - t0
    del emb
    tmp.cleanup()
    qids = [f"q{i:08d}" for i in range(n)]
    texts = pl.DataFrame({"query_id": qids, "cluster_id": pl.Series([None] * n, dtype=pl.String)})
    clusters = cluster_texts(texts, edges)
    rows = clusters.select("query_id", "cluster_id").with_columns(
        source=pl.lit("bench"), source_row=pl.col("query_id"), reference_answer=pl.lit(None, pl.String),
        test_cases=pl.lit(None, pl.String), prev_rep=pl.lit(None, pl.Boolean))
    reps = choose_representatives(rows, {})
    seconds = time.perf_counter() - t0
    cid = clusters["cluster_id"].to_numpy()
    base = n - n_dup
    recall = float(np.mean(cid[base:] == cid[groups[base:]]))
    per_cluster = pl.DataFrame({"c": cid, "g": groups}).group_by("c").agg(pl.col("g").n_unique().alias("groups"),
                                                                         pl.len().alias("size"))
    falsely_merged = int(per_cluster.filter(pl.col("groups") > 1)["size"].sum() or 0)
    return {"n": n, "seconds": seconds, "knn_seconds": t_knn, "recall": recall,
            "false_merge_rate": falsely_merged / n, "pairs": len(edges[0]),
            "representatives": int(reps["representative"].sum()), "planted": n_dup,
            "index": "flat" if n <= cfg.exact_index_max else f"{cfg.approx_index} nprobe={cfg.nprobe}"}


def embed_texts(n: int) -> list[str]:
    path = SHARED / "gsm8k" / "train.jsonl"
    if path.is_file():
        with open(path) as f:
            return [json.loads(line)["question"] for _, line in zip(range(n), f)]
    import reasoning_gym  # shipped with the project: the benchmark runs without ../shared

    return [e["question"] for e in reasoning_gym.create_dataset("basic_arithmetic", size=n, seed=0)]


def embed_run(n: int) -> tuple[float, int]:
    from am_assets.core.schema import normalize_text
    from resources.embedder import EmbedderResource

    texts = [normalize_text(t) for t in embed_texts(n)]
    emb = EmbedderResource()
    emb.encode(texts[:8])  # load the model outside the timing
    t0 = time.perf_counter()
    out = emb.encode(texts)
    return len(texts) / (time.perf_counter() - t0), out.shape[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--embed", type=int, default=1000, help="texts for the embedding throughput figure")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    args = parser.parse_args()
    if args.embed:
        (qps, dim), _, peak = run_measured(embed_run, args.embed)
        figure(f"embedding throughput (all-MiniLM-L6-v2, {dim}-d, {args.embed} GSM8K questions, CPU)", qps, "queries/s")
        figure("embedding peak memory", peak / 2**20, "MiB")
    for n in args.sizes:
        r, _, peak = run_measured(dedup_run, n)
        tag = f"dedup {n:,} queries ({r['index']})"
        figure(f"{tag} seconds (kNN {r['knn_seconds']:.1f}s)", r["seconds"], "s")
        figure(f"{tag} peak memory", peak / 2**20, "MiB")
        print(f"{tag} recall of {r['planted']:,} planted duplicates: {r['recall']:.4f} (target >= 0.99)", flush=True)
        print(f"{tag} false-merge rate: {r['false_merge_rate']:.5f} (share of items merged with another group)",
              flush=True)


if __name__ == "__main__":
    main()
