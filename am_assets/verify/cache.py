"""The verdict cache's fast path: unchanged rows are reused by one Polars join, with no per-row Python.

Each outcome row stores `content_key`: a Polars hash (vectorized, in Rust) of every column of the
response joined to its query that a verdict, the verifier choice or a quality flag can read (the
response text and its parsed parts, finish_reason, status, the query's reference / tests / constraints /
metadata), plus the registry's order of verifier keys. A response whose (response_id, content_key)
matches a cached row, and whose cached verifier_version is still that verifier's current version,
gets the cached row as is; so does its perplexity when the perplexity model is the same.

Every other row takes the per-row path in logic.py, which still reuses a verdict by (response_id,
verifier_version, input_hash) with the blake2b input_hash: a Polars upgrade that changes its hash
function (Polars does not promise stable hashes across versions) costs one per-row pass, not a
re-verification.
"""

from __future__ import annotations

import hashlib

import polars as pl

# per-generation numbers that no verifier reads: a retried row with the same text stays a hit
_VOLATILE = {"latency_s", "prompt_tokens", "completion_tokens", "attempts", "teacher", "shard"}
# what a hit takes from its cached row (passed and repetitive are recomputed for the whole partition)
_REUSED = ["response_id", "verify_score", "verifier", "verifier_version", "status", "details", "has_think",
           "has_answer", "truncated", "perplexity", "perplexity_model", "input_hash"]


def content_keys(joined: pl.DataFrame, registry) -> pl.Series:
    """One key per row of `join_queries(responses, queries)`: equal keys = equal verifier inputs."""
    cols = sorted(c for c in joined.columns if c not in _VOLATILE and not c.startswith("_"))
    sig = hashlib.blake2b(("|".join(v.key for v in registry) + "#" + ",".join(cols)).encode(),
                          digest_size=6).hexdigest()
    if not cols or joined.height == 0:
        return pl.Series("content_key", [None] * joined.height, dtype=pl.String)
    # struct(...).hash covers nulls and field order; a 64-bit hash per row of one partition, checked
    # together with response_id, makes a false hit negligible
    return joined.select((pl.struct(cols).hash(seed=0).cast(pl.String) + "-" + sig).alias("content_key")).to_series()


def split_hits(joined: pl.DataFrame, cached: pl.DataFrame, versions: dict[str, tuple[str, str]],
               perplexity_model: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(hits: the cached outcome columns of unchanged rows, in `_REUSED` + `_i` order; the row indices
    `_i` of `joined` that take the per-row path). `joined` carries `_i` and `content_key`."""
    idx = joined.select("_i", "response_id", "content_key")
    if cached.height == 0 or not {"content_key", *_REUSED} <= set(cached.columns):
        return pl.DataFrame(), idx.select("_i")
    current = pl.DataFrame({"verifier": [name for name, _ in versions.values()],
                            "_current": [version for _, version in versions.values()]}).unique("verifier")
    usable = (cached.select(*_REUSED, "content_key")
              .unique(["response_id", "content_key"], keep="first")
              .join(current, on="verifier", how="inner")
              .filter(pl.col("verifier_version") == pl.col("_current")).drop("_current"))
    if perplexity_model:  # a hit needs this model's perplexity; other rows compute it on the per-row path
        usable = usable.filter((pl.col("perplexity_model") == perplexity_model) & pl.col("perplexity").is_not_null())
    else:
        usable = usable.with_columns(pl.lit(None, pl.Float64).alias("perplexity"),
                                     pl.lit(None, pl.String).alias("perplexity_model"))
    hits = idx.join(usable, on=["response_id", "content_key"], how="inner")
    misses = idx.join(hits.select("_i"), on="_i", how="anti").select("_i")
    return hits.select("_i", "content_key", *_REUSED), misses


def passed_flag(thresholds: dict[str, float]) -> pl.Expr:
    """status ok and score above the category's threshold (no threshold: never a pass)."""
    limit = pl.col("category").replace_strict(list(thresholds), list(thresholds.values()), default=float("inf"),
                                              return_dtype=pl.Float64) if thresholds else pl.lit(float("inf"))
    return ((pl.col("status") == "ok") & (pl.col("verify_score") > limit.fill_null(float("inf")))).alias("passed")


def appended_rows(outcomes: pl.DataFrame, cached: pl.DataFrame) -> pl.DataFrame | None:
    """The rows to append when the partition's new `outcomes` are its `cached` rows, unchanged, plus
    new responses (adding queries: no flag flipped, no threshold moved); None when any cached row
    changed or left, which takes a rewrite. Rows are compared by response_id and a hash of every column."""
    cols = list(outcomes.columns)
    if cached.height == 0 or not set(cols) <= set(cached.columns) or cached.height > outcomes.height:
        return None
    old = cached.select(cols).cast(outcomes.schema)
    old = old.select("response_id", _h=old.hash_rows(seed=0))
    new = outcomes.with_columns(_h=outcomes.hash_rows(seed=0))
    if old["response_id"].n_unique() != old.height:
        return None
    kept = new.join(old, on=["response_id", "_h"], how="semi").height
    added = new.join(old, on="response_id", how="anti")
    if kept != old.height or kept + added.height != new.height:
        return None
    return added.drop("_h")
