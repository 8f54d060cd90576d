"""The global dedup behind the `dedup_clusters` asset (no Dagster here): clusters, representatives,
contamination and shard of every kept row, computed incrementally from the asset's previous table.

- Clusters recorded in the previous `dedup_clusters` table are frozen; only texts new since then are
  searched (kNN for k new texts, not all of them), and their embeddings come from `query_embeddings`
  (which embedded only texts new to the cache).
- Decontamination runs for new texts only, unless the benchmarks or their settings changed.
- What the table was computed from (an input key, the cluster-settings key and the decontamination
  key) is stamped on its Delta commit, so a re-materialization with the same inputs writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Callable

import numpy as np
import polars as pl

from am_assets.core.progress import ProgressLog
from am_assets.core.schema import QUERY_SCHEMA
from am_assets.dedup.decontam import find_contamination
from am_assets.dedup.embeddings import embed_with_cache, embedding_rows, to_array, with_text_hash
from am_assets.dedup.knn import similar_pairs
from am_assets.dedup.logic import choose_representatives, cluster_texts, shard_column
from am_assets.dedup.nearexact import number_blocks

TABLE = "dedup_clusters"
OUTPUT_COLUMNS = [*QUERY_SCHEMA, "cluster_id", "representative", "duplicate_of", "contaminated_by", "shard"]
ALGORITHM = 2  # bump when the computation changes

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def _paced(log: Log, line: str) -> Callable[[int, int], None]:
    """A progress(done, total) callback logging `line` at most every 10 s (core/progress.py), and the last."""
    report = ProgressLog(log)
    return lambda done, total: report(line.format(done=done, total=total), final=done == total)


def _hash(spec: dict, size: int = 8) -> str:
    return hashlib.blake2b(json.dumps(spec, sort_keys=True, default=str).encode(), digest_size=size).hexdigest()


def settings_key(cfg, eid: str) -> str:
    """What "the same cluster" means: embedder, threshold, semantic on/off, near-exact rule. A change
    re-clusters from scratch; index tuning (knn, index kind, nprobe) only affects recall."""
    d = cfg.dedup
    return _hash({"semantic": d.semantic, "cosine_threshold": d.cosine_threshold, "embedder": eid,
                  "near_exact": d.near_exact and d.near_exact_jaccard, "same_numbers": d.same_numbers})


def decontam_key(lake, cfg, eid: str) -> str:
    """The benchmarks and settings decontamination depends on; unchanged = old texts keep their evidence."""
    return _hash({"benchmarks": lake.version("benchmarks"), "names": sorted(b.name for b in cfg.benchmarks),
                  "settings": cfg.decontamination.model_dump(mode="json"), "semantic": cfg.dedup.semantic,
                  "embedder": eid})


def input_key(lake, cfg, eid: str) -> str:
    """Identity of every input: upstream table versions, sources, settings, shards, embedder."""
    return _hash({
        "clean_queries": lake.version("clean_queries"), "query_embeddings": lake.version("query_embeddings"),
        "benchmarks": lake.version("benchmarks"),
        "sources": sorted((s.name, s.priority) for s in cfg.all_sources()),
        "benchmark_names": sorted(b.name for b in cfg.benchmarks),
        "dedup": cfg.dedup.model_dump(mode="json", exclude={"embedder", "threads"}),
        "decontamination": cfg.decontamination.model_dump(mode="json"),
        "shards": cfg.shards, "embedder": eid, "algorithm": ALGORITHM,
    }, 12)


def stored_keys(lake) -> dict[str, str]:
    """The keys stamped on the newest commit of the table ({} when there is none)."""
    hist = lake.history(TABLE, 1)
    return {k: v for k, v in (hist[0] if hist else {}).items() if k.startswith("dedup_")}


def _embeddings(lake, cfg, embedder, texts: pl.DataFrame, log: Log, context) -> tuple[np.ndarray, pl.Series, dict]:
    """Vectors of `texts` from `query_embeddings`; texts it lacks (a source not embedded yet) go
    through the cache. Also `embedded_as` (query text hash whose vector a text carries)."""
    eid = embedder.embedder_id()
    have = pl.DataFrame(schema={"text_hash": pl.String, "embedding": pl.List(pl.Float32), "embedded_as": pl.String})
    if lake.exists("query_embeddings"):
        lf = lake.scan("query_embeddings").filter(pl.col("embedder") == eid)
        cols = lf.collect_schema().names()
        have = (lf.select("text_hash", "embedding",
                          pl.col("embedded_as") if "embedded_as" in cols else pl.col("text_hash").alias("embedded_as"))
                .join(texts.lazy().select("text_hash"), on="text_hash", how="semi")
                .unique("text_hash", keep="first").collect())
    joined = texts.select("text_hash").join(have, on="text_hash", how="left", maintain_order="left")
    lacking = joined["embedding"].is_null().to_numpy()
    stats = {"embedded_new": 0}
    if lacking.any():
        log(f"dedup: {int(lacking.sum())} texts have no row in query_embeddings for {eid}; embedding them here")
        sub = texts.filter(pl.Series(lacking))
        filled, stats = embedding_rows(lake, embedder, sub, log, context)
        have = pl.concat([have.filter(~pl.col("text_hash").is_in(sub["text_hash"].implode())),
                          filled.with_columns(embedded_as=pl.col("text_hash"))])
        joined = texts.select("text_hash").join(have, on="text_hash", how="left", maintain_order="left")
    del have
    return to_array(joined["embedding"]), joined["embedded_as"], stats


def _read_inputs(lake, cfg) -> tuple[pl.DataFrame, pl.DataFrame]:
    names = [s.name for s in cfg.all_sources()]
    rows = (lake.scan("clean_queries").filter(pl.col("drop_reason").is_null() & pl.col("source").is_in(names))
            .select(list(QUERY_SCHEMA)).collect() if lake.exists("clean_queries") else pl.DataFrame(schema=QUERY_SCHEMA))
    bench_names = [b.name for b in cfg.benchmarks]
    bench = (lake.scan("benchmarks").filter(pl.col("benchmark").is_in(bench_names)).collect()
             if lake.exists("benchmarks") and bench_names
             else pl.DataFrame(schema={**QUERY_SCHEMA, "item_id": pl.String, "benchmark": pl.String}))
    return rows, bench


def compute_clusters(lake, cfg, embedder, log: Log = _quiet, context=None) -> tuple[pl.DataFrame, dict, dict]:
    """(table rows, stats, keys to stamp on the commit) for the current inputs and previous table."""
    eid = embedder.embedder_id()
    keys = {"dedup_input_key": input_key(lake, cfg, eid), "dedup_settings_key": settings_key(cfg, eid),
            "dedup_decontam_key": decontam_key(lake, cfg, eid), "dedup_shards": str(cfg.shards)}
    stored = stored_keys(lake)
    rows, bench = _read_inputs(lake, cfg)
    prev = pl.DataFrame(schema={"source": pl.String, "query_id": pl.String, "cluster_id": pl.String,
                                "representative": pl.Boolean, "contaminated_by": pl.String, "shard": pl.String})
    if lake.exists(TABLE):
        if stored.get("dedup_settings_key") != keys["dedup_settings_key"]:
            log("dedup settings or embedder changed since the stored clusters: clustering from scratch "
                "(representatives may change)")
        else:
            prev = lake.scan(TABLE).select(prev.columns).collect()
            if stored.get("dedup_shards") != keys["dedup_shards"]:  # another shard count: every shard anew
                prev = prev.with_columns(pl.lit(None, pl.String).alias("shard"))
    reuse_contam = stored.get("dedup_decontam_key") == keys["dedup_decontam_key"] and prev.height > 0
    # one node per text; every row of a text shares its cluster
    prev_text = prev.group_by("query_id").agg(pl.col("cluster_id").first(), pl.col("contaminated_by").first())
    texts = rows.group_by("query_id").agg(pl.col("question").first()).sort("query_id")
    texts = texts.join(prev_text, on="query_id", how="left", maintain_order="left")
    new_rows = np.flatnonzero(texts["cluster_id"].is_null().to_numpy())
    log(f"dedup: {rows.height} rows, {texts.height} texts ({len(new_rows)} new) from {rows['source'].n_unique()} sources")
    d = cfg.dedup
    t0 = time.monotonic()
    emb, emb_stats = None, {"embedded_new": 0}
    edges = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    near = 0
    if d.semantic:  # text hashes key the embeddings: only this path needs them (~13 us a text)
        texts = with_text_hash(texts)
        emb, embedded_as, emb_stats = _embeddings(lake, cfg, embedder, texts, log, context)
        # same-numbers rule: only texts with the same number set can be duplicates, so the kNN searches
        # within those sets (exact for all but huge ones): the 3.34M-text wall, docs/dedup.md
        blocks = number_blocks(texts["question"]) if d.same_numbers else None
        edges = similar_pairs(emb, new_rows, d.cosine_threshold, d.knn, d.exact_index_max, d.approx_index, d.nprobe,
                              progress=_paced(log, "kNN: {done}/{total} new texts searched"),
                              blocks=blocks, threads=d.threads)
        # a near-exact duplicate (it borrowed another text's embedding) is linked to that text directly
        idx = pl.DataFrame({"text_hash": texts["text_hash"], "i": np.arange(texts.height)})
        borrowed = (pl.DataFrame({"i": np.arange(texts.height), "embedded_as": embedded_as})
                    .join(idx.rename({"text_hash": "embedded_as", "i": "j"}), on="embedded_as")
                    .filter((pl.col("i") != pl.col("j")) & (pl.col("i").is_in(new_rows) | pl.col("j").is_in(new_rows))))
        near = borrowed.height
        if near:
            edges = tuple(np.concatenate([e, x]) for e, x in zip(edges, (
                borrowed["i"].to_numpy(), borrowed["j"].to_numpy(), np.ones(near, np.float32))))
    clustered = cluster_texts(texts.select("query_id", "cluster_id"), edges)
    log(f"dedup: {len(edges[0])} similar pairs ({near} near-exact), {clustered['cluster_id'].n_unique()} clusters "
        f"({time.monotonic() - t0:.1f}s)")
    rows = rows.join(clustered.select("query_id", "cluster_id"), on="query_id", how="left").join(
        prev.select("source", "query_id", pl.col("representative").alias("prev_rep")),
        on=["source", "query_id"], how="left")
    rows = choose_representatives(rows, {s.name: s.priority for s in cfg.all_sources()}).drop("prev_rep")
    # decontamination: old texts keep their evidence while the benchmarks and settings are unchanged
    todo = new_rows if reuse_contam else np.arange(texts.height)
    bench_stats = {"embedded_new": 0}
    bench_emb = None
    if bench.height and d.semantic and len(todo):
        bench = with_text_hash(bench)
        bench_emb, _, bench_stats = embed_with_cache(lake, embedder, bench, log, context)
    dc = cfg.decontamination
    sub = texts[todo]
    contam = find_contamination(sub.select("query_id", "question"), emb[todo] if emb is not None else None, bench,
                                bench_emb, dc.ngram, dc.ngram_min_share, dc.cosine_threshold, dc.max_evidence,
                                progress=_paced(log, "decontamination: {done}/{total} texts"))
    if reuse_contam:
        kept = texts.filter(pl.col("cluster_id").is_not_null()).select("query_id", "contaminated_by")
        contam = pl.concat([kept, contam])
    rows = rows.join(contam, on="query_id", how="left")
    # the stored shard of a known query (same shard count); blake2b in Python only for the others
    rows = rows.join(prev.select("query_id", "shard").unique("query_id"), on="query_id", how="left")
    todo_shard = rows["shard"].is_null()
    if todo_shard.any():
        shard = rows["shard"].clone()
        shard.scatter(np.flatnonzero(todo_shard.to_numpy()), shard_column(rows.filter(todo_shard)["query_id"], cfg.shards))
        rows = rows.with_columns(shard)
    rows = rows.select(OUTPUT_COLUMNS)
    stats = {"texts": texts.height, "new_texts": len(new_rows), "similar_pairs": len(edges[0]),
             "near_exact_pairs": near, "decontaminated_texts": len(todo),
             "query_embedded_new": emb_stats["embedded_new"], "benchmark_embedded_new": bench_stats["embedded_new"],
             "seconds": round(time.monotonic() - t0, 2)}
    return rows.sort("source", "query_id"), stats, keys
