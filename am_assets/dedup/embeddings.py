"""Embeddings of query texts: the `embedding_cache` lake table and the near-exact pre-pass.

`embedding_cache` (partition column `embedder`): one embedding per (text_hash, embedder). Only texts
missing from it are embedded; an append writes only keys the table lacks at commit time
(resources/lake.py), so processes filling it at once leave one row per key.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import polars as pl

from am_assets.core.progress import ProgressLog
from am_assets.core.schema import normalize_text, text_hash
from am_assets.dedup.nearexact import near_exact_anchor

CACHE_TABLE = "embedding_cache"
EMBED_CHUNK = 100_000  # texts encoded and committed to the cache at a time

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def with_text_hash(df: pl.DataFrame, col: str = "question") -> pl.DataFrame:
    return df.with_columns(text_hash=pl.Series([text_hash(t) for t in df[col].to_list()], dtype=pl.String))


def as_list_column(vecs: np.ndarray) -> pl.Series:
    """A (n, d) float32 array as a List(Float32) column (Delta has no fixed-size lists)."""
    return pl.Series("embedding", np.ascontiguousarray(vecs, dtype=np.float32)).cast(pl.List(pl.Float32))


def to_array(col: pl.Series) -> np.ndarray:
    dim = len(col[0]) if len(col) else 0
    if not dim:
        return np.zeros((len(col), 0), np.float32)
    return np.ascontiguousarray(col.cast(pl.Array(pl.Float32, dim)).to_numpy(), dtype=np.float32)


def _cached(lake, eid: str, hashes: pl.DataFrame) -> pl.DataFrame:
    """(text_hash, embedding) of the cached ones among `hashes`. The keys are read first (~20 ms at 1M
    texts), then the vectors of only the files holding a hit: reading every vector to find the few a
    new source shares cost ~2.5 s a source at 1M texts."""
    empty = pl.DataFrame(schema={"text_hash": pl.String, "embedding": pl.List(pl.Float32)})
    dt = lake.table(CACHE_TABLE) if hashes.height else None
    if dt is None:
        return empty
    wanted = pl.col("text_hash").is_in(hashes["text_hash"].unique().implode())
    files = lake.scan_files(dt, list(lake.partition_files(CACHE_TABLE, {"embedder": eid}, dt).values()))
    if files is not None:
        holding = files.select("text_hash", "_file").filter(wanted).select("_file").unique().collect()["_file"]
        if holding.len() == 0:
            return empty
        lf = lake.scan_files(dt, holding.to_list())
    else:
        lf = lake.scan(CACHE_TABLE, {"embedder": eid}, dt=dt)
    return lf.select("text_hash", "embedding").filter(wanted).unique("text_hash", keep="first").collect()


def embed_with_cache(lake, embedder, texts: pl.DataFrame, log: Log = _quiet, context=None,
                     near_exact: float | None = None) -> tuple[np.ndarray, pl.Series, dict]:
    """`embedding_rows` as an (n, d) float32 array aligned with `texts`, `embedded_as` and the stats."""
    rows, stats = embedding_rows(lake, embedder, texts, log, context, near_exact)
    return to_array(rows["embedding"]), rows["embedded_as"], stats


def embedding_rows(lake, embedder, texts: pl.DataFrame, log: Log = _quiet, context=None,
                   near_exact: float | None = None) -> tuple[pl.DataFrame, dict]:
    """Embeddings for `texts` (columns text_hash, question): a frame aligned with its rows, with
    columns text_hash, embedding (List(Float32)) and embedded_as (the text_hash whose embedding a row
    carries).

    Reads (text_hash, embedder) hits from the cache and embeds only the rest (normalized text, so the
    key is exact), appending them. With `near_exact` (a Jaccard threshold), a missing text that is a
    near-exact duplicate of another text here (nearexact.py) is not embedded: it borrows that text's
    embedding (never written to the cache under its own key). Stats: {"embedded_new", "reused",
    "near_exact_skipped", "embedder"}. The vectors stay a list column (an array and back again held
    two more copies of them: ~1 GB each at 1M texts).
    """
    eid = embedder.embedder_id()
    uniq = texts.select("text_hash", "question").unique("text_hash", keep="first", maintain_order=True)
    cached = _cached(lake, eid, uniq)
    is_cached = uniq["text_hash"].is_in(cached["text_hash"].implode()).to_numpy()
    source_of = uniq["text_hash"]  # the text whose embedding each unique text uses
    skipped = 0
    if near_exact is not None and (~is_cached).any():
        anchor, _ = near_exact_anchor(uniq["question"].to_list(), near_exact, preferred=is_cached)
        own = is_cached | (anchor == np.arange(uniq.height))
        skipped = int((~own).sum())
        source_of = pl.Series("text_hash", uniq["text_hash"].to_numpy()[np.where(own, np.arange(uniq.height), anchor)])
    missing = uniq.filter(~pl.Series(is_cached) & (source_of == uniq["text_hash"]))
    log(f"embedder {eid}: {cached.height} of {uniq.height} unique texts cached, embedding {missing.height}"
        + (f", {skipped} near-exact duplicates borrow an embedding" if skipped else ""))
    if missing.height:
        t0, report = time.monotonic(), ProgressLog(log)

        def progress(done, total):
            report(f"embedded {done}/{total} texts ({done / max(time.monotonic() - t0, 1e-9):.1f}/s)",
                   final=done == total)

        # committed a chunk at a time: encoding and the Delta write each held ~2-3.5 copies of what they
        # handle (7.3 GB peak at 1M texts in one go), and a killed run keeps the chunks it finished
        for start in range(0, missing.height, EMBED_CHUNK):
            chunk = missing.slice(start, EMBED_CHUNK)
            vecs = embedder.encode([normalize_text(t) for t in chunk["question"].to_list()],
                                   progress=lambda done, total: progress(start + done, missing.height))
            new = pl.DataFrame({"text_hash": chunk["text_hash"], "embedding": as_list_column(vecs)})
            lake.write_partition(CACHE_TABLE, new, {"embedder": eid}, context=context, mode="append",
                                 key=["text_hash"])
            cached = pl.concat([cached, new])
    mapping = pl.DataFrame({"text_hash": uniq["text_hash"], "embedded_as": source_of})
    aligned = (texts.select("text_hash").join(mapping, on="text_hash", how="left", maintain_order="left")
               .join(cached.rename({"text_hash": "embedded_as"}), on="embedded_as", how="left", maintain_order="left"))
    return aligned.select("text_hash", "embedding", "embedded_as"), {
        "embedded_new": missing.height, "reused": int(is_cached.sum()), "near_exact_skipped": skipped, "embedder": eid}
