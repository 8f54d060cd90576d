"""Lake-backed parts of dedup (no Dagster here): the embedding cache and the global dedup state.

- `embedding_cache` (partition column `embedder`): one embedding per (text_hash, embedder). Only
  texts missing from it are embedded; an append writes only keys the table lacks at commit time
  (resources/lake.py), so processes filling it at once leave one row per key.
- `dedup_state` (unpartitioned): the latest global assignment of every kept row (cluster,
  representative, contamination, shard) plus the `state_key` of the inputs it was computed from.
  Every `unique_queries` shard needs the same global result: the first shard of a run computes it
  (under a lock) and the others find the key unchanged and only filter. The previous state is also
  what makes the assignment stable when a source is added.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from contextlib import contextmanager
from typing import Callable

import numpy as np
import polars as pl

from am_assets.dedup.decontam import find_contamination
from am_assets.dedup.knn import similar_pairs
from am_assets.dedup.logic import choose_representatives, cluster_texts, shard_column
from am_assets.core.schema import QUERY_SCHEMA, normalize_text, text_hash
from resources.instance import file_lock

CACHE_TABLE = "embedding_cache"
STATE_TABLE = "dedup_state"
OUTPUT_COLUMNS = [*QUERY_SCHEMA, "cluster_id", "representative", "duplicate_of", "contaminated_by", "shard"]

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def with_text_hash(df: pl.DataFrame, col: str = "question") -> pl.DataFrame:
    return df.with_columns(text_hash=pl.Series([text_hash(t) for t in df[col].to_list()], dtype=pl.String))


def as_list_column(vecs: np.ndarray) -> pl.Series:
    """A (n, d) float32 array as a List(Float32) column (Delta has no fixed-size lists)."""
    return pl.Series("embedding", np.ascontiguousarray(vecs, dtype=np.float32)).cast(pl.List(pl.Float32))


def embed_with_cache(lake, embedder, texts: pl.DataFrame, log: Log = _quiet, context=None) -> tuple[np.ndarray, dict]:
    """Embeddings for `texts` (columns text_hash, question), aligned with its rows.

    Reads (text_hash, embedder) hits from the cache, embeds only the rest (normalized text, so the
    key is exact) and appends them. Returns (array, {"embedded_new", "reused", "embedder"}).
    """
    eid = embedder.embedder_id()
    uniq = texts.select("text_hash", "question").unique("text_hash", keep="first", maintain_order=True)
    cached = pl.DataFrame(schema={"text_hash": pl.String, "embedding": pl.List(pl.Float32)})
    if lake.exists(CACHE_TABLE) and uniq.height:
        cached = (lake.scan(CACHE_TABLE, {"embedder": eid}).select("text_hash", "embedding")
                  .join(uniq.lazy().select("text_hash"), on="text_hash", how="semi")
                  .unique("text_hash", keep="first").collect())
    missing = uniq.join(cached.select("text_hash"), on="text_hash", how="anti")
    log(f"embedder {eid}: {cached.height} of {uniq.height} unique texts cached, embedding {missing.height}")
    if missing.height:
        t0 = time.monotonic()

        def progress(done, total):
            log(f"embedded {done}/{total} texts ({done / max(time.monotonic() - t0, 1e-9):.1f}/s)")

        vecs = embedder.encode([normalize_text(t) for t in missing["question"].to_list()], progress=progress)
        new = pl.DataFrame({"text_hash": missing["text_hash"],
                            "embedding": as_list_column(vecs)})
        lake.write_partition(CACHE_TABLE, new, {"embedder": eid}, context=context, mode="append", key=["text_hash"])
        cached = pl.concat([cached, new])
    dim = len(cached["embedding"][0]) if cached.height else 0
    aligned = texts.select("text_hash").join(cached, on="text_hash", how="left", maintain_order="left")
    arr = aligned["embedding"].cast(pl.Array(pl.Float32, dim)).to_numpy() if dim else np.zeros((texts.height, 0), np.float32)
    return np.ascontiguousarray(arr, dtype=np.float32), {"embedded_new": missing.height, "reused": cached.height - missing.height,
                                                         "embedder": eid}


def settings_key(cfg, eid: str) -> str:
    """What "the same cluster" means: embedder, threshold, semantic on/off. A change re-clusters from
    scratch; index tuning (knn, index kind, nprobe) only affects recall and keeps the clusters."""
    spec = {"semantic": cfg.dedup.semantic, "cosine_threshold": cfg.dedup.cosine_threshold, "embedder": eid}
    return hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=8).hexdigest()


def state_key(lake, cfg, eid: str) -> str:
    """Identity of the inputs of the global dedup: upstream table versions, settings, embedder."""
    spec = {
        "clean_queries": lake.version("clean_queries"),
        "benchmarks": lake.version("benchmarks"),
        "sources": sorted((s.name, s.priority) for s in cfg.all_sources()),
        "benchmark_names": sorted(b.name for b in cfg.benchmarks),
        "dedup": cfg.dedup.model_dump(mode="json", exclude={"embedder"}),
        "decontamination": cfg.decontamination.model_dump(mode="json"),
        "shards": cfg.shards,
        "embedder": eid,
        "algorithm": 1,  # bump when the computation changes
    }
    return hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=12).hexdigest()


def stored_state_key(lake) -> str | None:
    if not lake.exists(STATE_TABLE):
        return None
    head = lake.scan(STATE_TABLE).select("state_key").head(1).collect()
    return head["state_key"][0] if head.height else None


@contextmanager
def state_lock(lake):
    """Serialize global computations of one lake on this machine (parallel shard runs)."""
    name = hashlib.blake2b(lake.uri(STATE_TABLE).encode(), digest_size=8).hexdigest()
    with file_lock(os.path.join(tempfile.gettempdir(), f"am-distill-dedup-{name}.lock")):
        yield


def compute_state(lake, cfg, embedder, log: Log = _quiet, context=None) -> tuple[pl.DataFrame, dict]:
    """The global assignment of every kept clean row, from the lake and the previous state."""
    names = [s.name for s in cfg.all_sources()]
    rows = (lake.scan("clean_queries").filter(pl.col("drop_reason").is_null() & pl.col("source").is_in(names))
            .select(list(QUERY_SCHEMA)).collect() if lake.exists("clean_queries") else pl.DataFrame(schema=QUERY_SCHEMA))
    bench_names = [b.name for b in cfg.benchmarks]
    bench = (lake.scan("benchmarks").filter(pl.col("benchmark").is_in(bench_names)).collect()
             if lake.exists("benchmarks") and bench_names else pl.DataFrame(schema={**QUERY_SCHEMA, "item_id": pl.String,
                                                                                    "benchmark": pl.String}))
    prev = pl.DataFrame(schema={"source": pl.String, "query_id": pl.String, "cluster_id": pl.String,
                                "representative": pl.Boolean})
    settings = settings_key(cfg, embedder.embedder_id())
    if lake.exists(STATE_TABLE):
        stored = lake.scan(STATE_TABLE).select(list(prev.columns) + ["settings_key"]).collect()
        if stored.height and stored["settings_key"][0] != settings:
            log("dedup settings or embedder changed since the stored state: clustering from scratch "
                "(representatives may change)")
        else:
            prev = stored.drop("settings_key")
    # one node per text; every row of a text shares its cluster
    texts = rows.group_by("query_id").agg(pl.col("question").first()).sort("query_id")
    texts = with_text_hash(texts).join(prev.group_by("query_id").agg(pl.col("cluster_id").first()),
                                       on="query_id", how="left", maintain_order="left")
    d = cfg.dedup
    emb, emb_stats = None, {"embedded_new": 0}
    if d.semantic:
        emb, emb_stats = embed_with_cache(lake, embedder, texts, log, context)
    new_rows = np.flatnonzero(texts["cluster_id"].is_null().to_numpy())
    log(f"dedup: {rows.height} rows, {texts.height} texts ({len(new_rows)} new) from {rows['source'].n_unique()} sources")
    t0 = time.monotonic()
    edges = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if d.semantic:
        edges = similar_pairs(emb, new_rows, d.cosine_threshold, d.knn, d.exact_index_max, d.approx_index, d.nprobe,
                              progress=lambda done, total: log(f"kNN: {done}/{total} new texts searched"))
    clustered = cluster_texts(texts.select("query_id", "cluster_id"), edges)
    log(f"dedup: {len(edges[0])} similar pairs, {clustered['cluster_id'].n_unique()} clusters "
        f"({time.monotonic() - t0:.1f}s)")
    rows = rows.join(clustered.select("query_id", "cluster_id"), on="query_id", how="left").join(
        prev.select("source", "query_id", pl.col("representative").alias("prev_rep")),
        on=["source", "query_id"], how="left")
    rows = choose_representatives(rows, {s.name: s.priority for s in cfg.all_sources()}).drop("prev_rep")
    # decontamination per text
    bench_stats = {"embedded_new": 0, "reused": 0}
    bench_emb = None
    if bench.height and d.semantic:
        bench = with_text_hash(bench)
        bench_emb, bench_stats = embed_with_cache(lake, embedder, bench, log, context)
    dc = cfg.decontamination
    contam = find_contamination(texts.select("query_id", "question"), emb, bench, bench_emb, dc.ngram,
                                dc.ngram_min_share, dc.cosine_threshold, dc.max_evidence,
                                progress=lambda done, total: log(f"decontamination: {done}/{total} texts"))
    rows = rows.join(contam, on="query_id", how="left")
    rows = rows.with_columns(shard_column(rows["query_id"], cfg.shards)).select(OUTPUT_COLUMNS)
    stats = {"texts": texts.height, "new_texts": len(new_rows), "similar_pairs": len(edges[0]),
             "query_embedded_new": emb_stats["embedded_new"], "benchmark_embedded_new": bench_stats["embedded_new"],
             "seconds": round(time.monotonic() - t0, 2)}
    return rows.sort("source", "query_id"), stats


def ensure_state(lake, cfg, embedder, log: Log = _quiet, context=None) -> tuple[str, dict | None]:
    """Make `dedup_state` current; returns (state key, stats if computed now else None)."""
    key = state_key(lake, cfg, embedder.embedder_id())
    if stored_state_key(lake) == key:
        return key, None
    with state_lock(lake):
        if stored_state_key(lake) == key:  # a parallel shard run computed it meanwhile
            return key, None
        state, stats = compute_state(lake, cfg, embedder, log, context)
        settings = settings_key(cfg, embedder.embedder_id())
        lake.write_partition(STATE_TABLE, state.with_columns(state_key=pl.lit(key), settings_key=pl.lit(settings)),
                             None, context=context)
        log(f"dedup_state written for key {key}: {state.height} rows")
        return key, stats


def read_state(lake, shard: str | None = None) -> pl.DataFrame:
    lf = lake.scan(STATE_TABLE)
    if shard is not None:
        lf = lf.filter(pl.col("shard") == shard)
    return lf.drop("state_key", "settings_key").collect()
