"""Selection rules for the training mix: DeepDistill Algorithm 1 (Stage I), Stage II, quality flags,
quotas and the token budget. Pure Polars; randomness is a seeded, order-free hash, so the same config
selects the same rows on any machine and in any row order.
"""

from __future__ import annotations

import hashlib
from typing import Mapping, Sequence

import numpy as np
import polars as pl

from am_assets.difficulty.api import SCORED_STATUSES, scored_frame, threshold_expr

DEFAULT_CV_THRESHOLD = 0.05  # DeepDistill v1/v2; per-category values of the latest version are not published

# decision per query in Stage I
KEEP_CHALLENGING = "stage1:cv_above_threshold"  # CV > CV_t: every passing response
KEEP_OTHER = "stage1:other_sampled"  # CV <= CV_t, category other: kept with probability other_keep_prob
STAGE2 = "stage2:top_cv"
DROP_NO_SCORE = "no_scored_response"
DROP_BELOW = "max_score_below_threshold"
DROP_EASY = "cv_not_above_threshold"
DROP_OTHER = "other_not_sampled"

# quality flag -> expression over verification_outcomes columns that is true when the flag failed
FLAG_EXPRS = {
    "truncated": lambda cfg: pl.col("truncated").fill_null(False),
    "missing_think": lambda cfg: ~pl.col("has_think").fill_null(True),
    "missing_answer": lambda cfg: ~pl.col("has_answer").fill_null(True),
    "repetitive": lambda cfg: pl.col("repetitive").fill_null(False),
    "high_perplexity": lambda cfg: pl.col("perplexity").fill_null(0.0) > cfg["max_perplexity"],
}
FLAG_COLUMNS = {"truncated": "truncated", "missing_think": "has_think", "missing_answer": "has_answer",
                "repetitive": "repetitive", "high_perplexity": "perplexity"}


def stable_uniform(values: pl.Series, seed: int, salt: str = "") -> pl.Series:
    """A number in [0, 1) per value: blake2b(seed, salt, value). Stable across machines, Polars versions
    and row order (Polars' own hash is not guaranteed stable across versions)."""
    prefix = f"{seed}:{salt}:".encode()
    arr = np.fromiter(
        (int.from_bytes(hashlib.blake2b(prefix + str(v).encode(), digest_size=8).digest(), "big") >> 11
         for v in values.to_list()), dtype=np.float64, count=len(values))
    return pl.Series(values.name, arr / float(1 << 53))


def uniform_expr(col: str, seed: int, salt: str = "") -> pl.Expr:
    return pl.col(col).map_batches(lambda s: stable_uniform(s, seed, salt), return_dtype=pl.Float64, is_elementwise=True)


def cv_threshold_expr(cv_threshold: Mapping[str, float]) -> pl.Expr:
    return pl.col("category").replace_strict(dict(cv_threshold), default=DEFAULT_CV_THRESHOLD, return_dtype=pl.Float64)


def flagged_expr(exclude_flags: Sequence[str], max_perplexity: float = 20.0) -> pl.Expr:
    """True when a response fails one of the excluded quality flags."""
    expr = pl.lit(False)
    for flag in exclude_flags:
        expr = expr | FLAG_EXPRS[flag]({"max_perplexity": max_perplexity})
    return expr


def failed_flags_expr(exclude_flags: Sequence[str], max_perplexity: float = 20.0) -> pl.Expr:
    """The names of the excluded flags a response failed, comma-separated (empty: none)."""
    parts = [pl.when(FLAG_EXPRS[f]({"max_perplexity": max_perplexity})).then(pl.lit(f)) for f in exclude_flags]
    if not parts:
        return pl.lit("")
    return pl.concat_str(parts, separator=",", ignore_nulls=True)


def pool_responses(outcomes: pl.LazyFrame, *, teachers: Sequence[str], thresholds: Mapping[str, float],
                   exclude_flags: Sequence[str] = (), max_perplexity: float = 20.0,
                   scored_statuses: Sequence[str] = SCORED_STATUSES) -> pl.LazyFrame:
    """Scored responses of the teachers whose responses may enter the mix, with `pass` and `flagged`."""
    lf = outcomes.filter(pl.col("teacher").is_in(list(teachers)))
    present = set(lf.collect_schema().names())
    for flag in exclude_flags:  # a table without the flag column cannot fail it
        col = FLAG_COLUMNS[flag]
        if col not in present:
            default = pl.lit(True) if col.startswith("has_") else pl.lit(None, dtype=pl.Float64 if col == "perplexity" else pl.Boolean)
            lf = lf.with_columns(default.alias(col))
    lf = scored_frame(lf, thresholds, scored_statuses).filter(pl.col("scored"))
    return lf.with_columns(flagged_expr(exclude_flags, max_perplexity).alias("flagged"),
                           failed_flags_expr(exclude_flags, max_perplexity).alias("failed_flags"))


def stage1_decisions(pool: pl.LazyFrame, difficulty: pl.LazyFrame, *, thresholds: Mapping[str, float],
                     cv_threshold: Mapping[str, float], other_keep_prob: float = 0.5, seed: int = 0) -> pl.LazyFrame:
    """Algorithm 1, one decision per query of `difficulty` (query_id, category, cv).

    s_max is the best score among the pool's responses (the reference teacher's by default, as in the
    papers). 1: s_max below the category threshold -> drop. 2: CV > CV_t -> keep every passing
    response. 3: otherwise keep `other` (incl. multi-turn) queries with probability other_keep_prob
    (seeded per query) and drop the rest. A null CV (fewer samples than ddof+1) is not > CV_t.
    """
    best = pool.group_by("query_id").agg(pl.col("score").max().alias("s_max"))
    lf = difficulty.select("query_id", "category", "cv").join(best, on="query_id", how="left")
    thr, cvt = threshold_expr(thresholds), cv_threshold_expr(cv_threshold)
    decision = (pl.when(pl.col("s_max").is_null()).then(pl.lit(DROP_NO_SCORE))
                .when(pl.col("s_max") < thr).then(pl.lit(DROP_BELOW))
                .when(pl.col("cv").fill_null(0.0) > cvt).then(pl.lit(KEEP_CHALLENGING))
                .when(pl.col("category") != "other").then(pl.lit(DROP_EASY))
                .when(uniform_expr("query_id", seed, "other") < other_keep_prob).then(pl.lit(KEEP_OTHER))
                .otherwise(pl.lit(DROP_OTHER)))
    return lf.with_columns(decision.alias("decision"), cvt.alias("cv_threshold"))


def stage1_select(pool: pl.LazyFrame, decisions: pl.LazyFrame) -> pl.LazyFrame:
    """The passing, unflagged responses of the kept queries, with `selection_reason`."""
    kept = decisions.filter(pl.col("decision").str.starts_with("stage1:")).select(
        "query_id", "cv_threshold", pl.col("decision").alias("selection_reason"))
    return (pool.filter(pl.col("pass") & ~pl.col("flagged"))
            .join(kept, on="query_id", how="inner")
            .with_columns(pl.lit("stage1").alias("stage")))


def stage2_select(pool: pl.LazyFrame, difficulty: pl.LazyFrame, *, cv_threshold: Mapping[str, float],
                  quota: Mapping[str, int], seed: int = 0) -> pl.LazyFrame:
    """Stage II (annealing): among queries with CV > CV_t and a passing, unflagged response, the
    highest-CV ones per category (stage2_quota; a category without a quota takes them all), one
    randomly chosen passing response each (seeded)."""
    cand = difficulty.select("query_id", "category", "cv").filter(pl.col("cv") > cv_threshold_expr(cv_threshold))
    ok = (pool.filter(pl.col("pass") & ~pl.col("flagged"))
          .join(cand.select("query_id"), on="query_id", how="semi")
          .with_columns(uniform_expr("response_id", seed, "stage2").alias("_u")))
    one = ok.sort("_u", "response_id").group_by("query_id", maintain_order=True).first()
    ranked = (one.join(cand.select("query_id", "cv"), on="query_id", how="inner")
              .with_columns(uniform_expr("query_id", seed, "stage2-tie").alias("_t"))
              .sort(["cv", "_t"], descending=[True, False])
              .with_columns(pl.int_range(pl.len()).over("category").alias("_rank")))
    limit = pl.col("category").replace_strict({k: int(v) for k, v in quota.items()}, default=None, return_dtype=pl.Int64)
    return (ranked.filter(limit.is_null() | (pl.col("_rank") < limit))
            .drop("_u", "_t", "_rank")
            .with_columns(pl.lit(STAGE2).alias("selection_reason"), pl.lit("stage2").alias("stage")))


def apply_quota(rows: pl.DataFrame, quota: Mapping[str, int], seed: int = 0) -> pl.DataFrame:
    """At most quota[category] rows per category (others unlimited), a seeded random subset."""
    if not quota or rows.height == 0:
        return rows
    ranked = (rows.with_columns(uniform_expr("response_id", seed, "quota").alias("_q"))
              .sort("_q", "response_id")
              .with_columns(pl.int_range(pl.len()).over("category").alias("_rank")))
    limit = pl.col("category").replace_strict({k: int(v) for k, v in quota.items()}, default=None, return_dtype=pl.Int64)
    return ranked.filter(limit.is_null() | (pl.col("_rank") < limit)).drop("_q", "_rank")


def apply_token_budget(rows: pl.DataFrame, budget: int | None, seed: int = 0, tokens: str = "tokens") -> pl.DataFrame:
    """Rows in seeded random order while the running total of `tokens` stays within the budget."""
    if budget is None or rows.height == 0:
        return rows
    return (rows.with_columns(uniform_expr("response_id", seed, "budget").alias("_b"))
            .sort("_b", "response_id")
            .filter(pl.col(tokens).fill_null(0).cum_sum() <= budget)
            .drop("_b"))


def decision_counts(decisions: pl.DataFrame) -> dict[str, dict[str, int]]:
    """{category: {decision: queries}} for metadata and the data card."""
    out: dict[str, dict[str, int]] = {}
    for cat, dec, n in decisions.group_by("category", "decision").len().sort("category", "decision").iter_rows():
        out.setdefault(cat, {})[dec] = int(n)
    return out
