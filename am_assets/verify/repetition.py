"""The `repetitive` flag of a teacher x shard partition, brought up to date from its new rows only.

The rule (quality.py) counts every n-gram over the whole partition, so adding 1% of the responses
used to tokenize and count the other 99% again (~1.5 s of a 250k-response partition). The lake table
`verification_ngram_counts` (partition columns teacher, shard) keeps the partition's exact counts:
a full count writes them as batch 0, and each later run with new rows appends one batch holding the
counts of those rows' texts only. A run then
- counts the new texts and looks their keys up in the stored counts;
- flags a new row when it holds a key whose total is over max_count;
- keeps each stored row's stored flag, unless a key crossed max_count with this run: then the stored
  texts that contain that n-gram's characters (whitespace aside) are tokenized again.
The counts are used only when they provably cover exactly the stored outcome rows: the fingerprint of
the counted (response_id, content_key) pairs equals that of the stored rows, every stored row is still
in the partition unchanged, and n, max_count, the tokenizer and the Polars version (whose hash makes
the keys) are the same. Otherwise everything is counted again and the partition's counts replaced.
The flags are those of a full count (tests/test_verify_repetition.py compares them run by run).

Disk: about 12 bytes per distinct n-gram, ~1-3 times the response text. Batches are merged into one
past COMPACT_BATCHES.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Callable

import numpy as np
import polars as pl
import pyarrow as pa

from am_assets.verify.quality import (TOKEN_PATTERN, count_and_flag, gram_probes, holding, mark_holders,
                                     ngram_counts, ngram_windows)
from resources.lake import add_hash_sums, hash_sum

STATE_TABLE = "verification_ngram_counts"
COMPACT_BATCHES = 16
_ROW_KEY = ["response_id", "content_key"]
_META = ("batch", "rows_fp", "sig", "writer")


def signature(n: int, max_count: int) -> str:
    spec = f"{n}|{max_count}|{TOKEN_PATTERN}|{pl.__version__}"
    return hashlib.blake2b(spec.encode(), digest_size=8).hexdigest()


def rows_fingerprint(rows: pl.DataFrame) -> int:
    """Order-free fingerprint of the rows' (response_id, content_key) pairs (resources.lake.hash_sum)."""
    return hash_sum(rows.select(pl.struct(_ROW_KEY).hash(seed=1)).to_series())


@dataclass(frozen=True)
class NgramState:
    """A partition's stored counts: `counts` (key, count; a key has a row per batch that saw it) of the
    texts of exactly the rows whose fingerprint is `fingerprint`."""
    counts: pl.LazyFrame
    batches: int
    fingerprint: int
    signature: str


@dataclass(frozen=True)
class NgramUpdate:
    """What a run writes: `counts` (key as UInt64, count) appended as batch `batch`, or replacing the
    partition's counts when `mode` is "overwrite"."""
    mode: str
    counts: pl.DataFrame
    batch: int
    fingerprint: int
    signature: str

    def frame(self) -> pl.DataFrame:
        counts = self.counts.select(pl.col("key").reinterpret(signed=True), pl.col("count").cast(pl.Int32))
        if counts.height == 0:  # a batch of texts with no n-gram still moves the fingerprint: keep a row
            counts = pl.DataFrame({"key": [0], "count": [0]}, schema={"key": pl.Int64, "count": pl.Int32})
        return counts.with_columns(batch=pl.lit(self.batch, pl.Int32), rows_fp=pl.lit(self.fingerprint, pl.Int64),
                                   sig=pl.lit(self.signature), writer=pl.lit(uuid.uuid4().hex[:16]))


def repetition_flags(joined: pl.DataFrame, cached: pl.DataFrame, n: int, max_count: int,
                     state: NgramState | None) -> tuple[np.ndarray, NgramUpdate, dict]:
    """(flag per row of `joined`, the counts to write, stats). `joined`: the partition's rows with
    response_id, content_key and response; `cached`: its stored outcome rows."""
    sig = signature(n, max_count)
    texts = joined["response"].fill_null("")
    fingerprint = rows_fingerprint(joined.select(_ROW_KEY))
    stored = _stored_flags(joined, cached, state, sig)
    if stored is None:
        flags, counts = count_and_flag(texts, n, max_count)
        return flags, NgramUpdate("overwrite", counts, 0, fingerprint, sig), {
            "ngram_count": "full", "frequent_ngrams": int((counts["count"] > max_count).sum())}
    new = np.flatnonzero(stored.is_null().to_numpy())
    windows, added, frequent, crossed = _count_new(texts.gather(new), n, max_count, state)
    flags = stored.fill_null(False).to_numpy().copy()
    mark_holders(flags, windows, frequent, new)
    if crossed.height:  # a stored row may hold a key that only now occurs often enough
        old = np.flatnonzero(stored.is_not_null().to_numpy())
        flags[old] |= holding(texts.gather(old), n, crossed, probes=gram_probes(texts.gather(new), n, crossed))
    return flags, _update(state, added, fingerprint, sig), {"ngram_count": f"{new.size} new rows",
                                                           "crossed_ngrams": crossed.height}


def appended_flags(new: pl.DataFrame, cached: pl.DataFrame, n: int, max_count: int, state: NgramState | None,
                   stored_texts: Callable[[], pl.Series]) -> tuple[np.ndarray, np.ndarray, NgramUpdate, dict] | None:
    """repetition_flags for a partition that is its `cached` outcome rows plus the `new` responses,
    when only the new texts were read: (flags of the new rows, flags of the cached rows, the counts to
    write, stats); None when the stored counts do not cover `cached`. `stored_texts()` gives the
    cached rows' texts in their order; it is called only when an n-gram crossed max_count."""
    sig = signature(n, max_count)
    if not _counts_cover(cached, state, sig):
        return None
    texts = new["response"].fill_null("")
    windows, added, frequent, crossed = _count_new(texts, n, max_count, state)
    flags = np.zeros(new.height, dtype=bool)
    mark_holders(flags, windows, frequent)
    old = cached["repetitive"].to_numpy().copy()
    if crossed.height:
        old |= holding(stored_texts().fill_null(""), n, crossed, probes=gram_probes(texts, n, crossed))
    # the fingerprint is a wrapping sum: the stored rows' (checked above) plus the new rows'
    fingerprint = add_hash_sums(state.fingerprint, rows_fingerprint(new.select(_ROW_KEY)))
    return flags, old, _update(state, added, fingerprint, sig), {"ngram_count": f"{new.height} new rows",
                                                                "crossed_ngrams": crossed.height}


def _count_new(texts: pl.Series, n: int, max_count: int, state: NgramState):
    """(windows and counts of `texts`, the keys over max_count with the stored counts, those of them
    that were not over it before)."""
    windows = ngram_windows(texts, n)
    added = ngram_counts(windows)
    before = (state.counts.join(added.lazy().select(pl.col("key").reinterpret(signed=True)), on="key", how="semi")
              .group_by("key").agg(before=pl.col("count").sum()).collect()
              .select(pl.col("key").reinterpret(signed=False), "before"))
    totals = added.join(before, on="key", how="left").with_columns(pl.col("before").fill_null(0))
    frequent = totals.filter(pl.col("count") + pl.col("before") > max_count)
    return windows, added, frequent, frequent.filter(pl.col("before") <= max_count)


def _update(state: NgramState, added: pl.DataFrame, fingerprint: int, sig: str) -> NgramUpdate:
    if state.batches >= COMPACT_BATCHES:
        merged = (pl.concat([state.counts.select(pl.col("key").reinterpret(signed=False), "count").collect(),
                             added.select("key", pl.col("count").cast(pl.Int32))])
                  .group_by("key").agg(pl.col("count").sum()))
        return NgramUpdate("overwrite", merged, 0, fingerprint, sig)
    return NgramUpdate("append", added, state.batches, fingerprint, sig)


def _stored_flags(joined: pl.DataFrame, cached: pl.DataFrame, state: NgramState | None, sig: str) -> pl.Series | None:
    """Per row of `joined`: its stored `repetitive` flag, null for a new row; None when the stored
    counts cannot be used (missing, another rule or tokenizer, other rows, a stored row gone or changed)."""
    if cached.height == 0 or not _counts_cover(cached, state, sig):
        return None
    stored = cached.select(*_ROW_KEY, "repetitive")
    flags = joined.select(_ROW_KEY).join(stored.unique(_ROW_KEY), on=_ROW_KEY, how="left",
                                         maintain_order="left")["repetitive"]
    # each stored row matched exactly once: none left or changed, none duplicated on either side
    return flags if flags.len() == joined.height and flags.is_not_null().sum() == stored.height else None


def _counts_cover(cached: pl.DataFrame, state: NgramState | None, sig: str) -> bool:
    """Do the stored counts (this rule's) cover exactly the `cached` outcome rows, each flagged?"""
    return (state is not None and state.signature == sig and {*_ROW_KEY, "repetitive"} <= set(cached.columns)
            and not cached["repetitive"].null_count()
            and rows_fingerprint(cached.select(_ROW_KEY)) == state.fingerprint)


def read_state(lake, part: dict[str, str]) -> NgramState | None:
    """The partition's stored counts, or None when there are none or they are not a clean series of
    batches 0..k-1 (each written once, with file statistics): then the run counts everything."""
    dt = lake.table(STATE_TABLE)
    if dt is None:
        return None
    files = pl.from_arrow(pa.table(dt.get_add_actions(flatten=True)))
    for col, value in part.items():
        files = files.filter(pl.col(f"partition.{col}") == value)
    cols = [f"{m}.{c}" for c in _META for m in ("min", "max")]
    if files.height == 0 or not set(cols) <= set(files.columns) or files.select(cols).null_count().sum_horizontal()[0]:
        return None
    if any((files[f"min.{c}"] != files[f"max.{c}"]).any() for c in _META):
        return None
    meta = files.select(pl.col(f"min.{c}").alias(c) for c in _META).unique()
    batches = meta["batch"].to_list()
    if meta["sig"].n_unique() != 1 or sorted(batches) != list(range(len(batches))):
        return None  # another rule's counts, or a batch written twice (two runs at once): count again
    last = meta.sort("batch").row(-1, named=True)
    return NgramState(lake.scan(STATE_TABLE, part, dt=dt).select("key", "count"), len(batches), last["rows_fp"],
                      last["sig"])


def write_state(lake, part: dict[str, str], update: NgramUpdate, state: NgramState | None, context=None) -> None:
    """Store the update; nothing when the counted rows are the stored ones already."""
    if update.mode == "append" and state is not None and update.fingerprint == state.fingerprint:
        return
    lake.write_partition(STATE_TABLE, update.frame(), part, context=context, mode=update.mode)
