"""Difficulty grading: pass rate per teacher, CV of the reference teacher's scores, a level.

Pure Polars (lazy in, lazy out) so one shard of 5M score rows streams through in bounded memory.
Definitions follow ../shared/reference/papers.md section 6 (DeepDistill Eq. 5 and 6).
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

import polars as pl

# Verification statuses that are a verdict on the response. timeout / verifier_error / no_reference
# are failures of the verifier (or of the data), never a verdict: they leave the pass-rate denominator.
SCORED_STATUSES = ("ok", "truncated", "unparseable")

LEVELS = ("easy", "medium", "hard", "unsolved")

PAPER_THRESHOLDS = {"math": 0.99, "code": 0.99, "if": 0.99, "science": 4.99, "other": 0.7}  # DeepDistill §2.4.2

OUTCOME_COLUMNS = ("query_id", "category", "teacher", "verify_score", "status")


def teacher_order(teacher_names: Sequence[str], weak: str | None = None, reference: str | None = None) -> list[str]:
    """Teachers from weakest to strongest: config order, with `weak` moved first and `reference`
    (default: the last listed, by convention the strongest) moved last."""
    names = list(teacher_names)
    if not names:
        return []
    for name, what in ((weak, "difficulty.weak_teacher"), (reference, "difficulty.reference_teacher")):
        if name is not None and name not in names:
            raise ValueError(f"pipeline.yaml: {what} = {name!r} is not a configured teacher (known: {names})")
    reference = reference or names[-1]
    weak = weak or next((n for n in names if n != reference), reference)
    middle = [n for n in names if n not in (weak, reference)]
    return [weak, *middle, reference] if weak != reference else [reference]


def teachers_from_config(cfg) -> tuple[list[str], str]:
    """(teachers weakest -> strongest, reference teacher) from a PipelineConfig."""
    order = teacher_order([t.name for t in cfg.teachers], cfg.difficulty.weak_teacher, cfg.difficulty.reference_teacher)
    return order, (order[-1] if order else "")


_SAFE = re.compile(r"[^A-Za-z0-9_]")


def pass_rate_column(teacher: str) -> str:
    """`pass_rate_<teacher>` (like the 40M release's pass_rate_r1); characters Delta dislikes become _."""
    return "pass_rate_" + _SAFE.sub("_", teacher)


def samples_column(teacher: str) -> str:
    return "samples_" + _SAFE.sub("_", teacher)


def threshold_expr(thresholds: Mapping[str, float], category: str = "category") -> pl.Expr:
    """Per-row pass threshold of the row's category. A category missing from `thresholds` keeps the
    papers' value; a category the papers do not know uses `other`'s."""
    merged = {**PAPER_THRESHOLDS, **thresholds}
    return pl.col(category).replace_strict(merged, default=merged["other"], return_dtype=pl.Float64)


def scored_frame(outcomes: pl.LazyFrame, thresholds: Mapping[str, float],
                 scored_statuses: Iterable[str] = SCORED_STATUSES) -> pl.LazyFrame:
    """Adds `scored` (the status is a verdict), `score` (null unless scored; a null score of a verdict
    counts as 0) and `pass` (score strictly above the category threshold, Eq. 5)."""
    scored = pl.col("status").is_in(list(scored_statuses))
    return outcomes.with_columns(
        scored.alias("scored"),
        pl.when(scored).then(pl.col("verify_score").cast(pl.Float64).fill_null(0.0)).alias("score"),
    ).with_columns((pl.col("scored") & (pl.col("score") > threshold_expr(thresholds))).alias("pass"))


def cv_expr(mean: pl.Expr, std: pl.Expr, n: pl.Expr, ddof: int) -> pl.Expr:
    """CV = std / mean. Undefined (null) when n <= ddof (e.g. one sample with ddof=1). When the mean is
    0 (every score 0: the scores are non-negative) the spread is 0 too and CV is defined as 0."""
    return (pl.when(n <= ddof).then(None)
            .when(mean == 0).then(0.0)
            .otherwise(std / mean)).cast(pl.Float64)


def difficulty_table(outcomes: pl.LazyFrame, *, teachers: Sequence[str], reference: str,
                     thresholds: Mapping[str, float], ddof: int = 1, easy_pass_rate: float = 0.5,
                     scored_statuses: Iterable[str] = SCORED_STATUSES) -> pl.LazyFrame:
    """One row per query from verification outcomes (columns OUTCOME_COLUMNS) of several teachers.

    teachers: weakest -> strongest (see teacher_order); rows of other teachers are ignored.
    Output columns: query_id, category, threshold, pass_rate_<t> / samples_<t> per teacher, pass_rates
    (JSON {teacher: rate}), reference_teacher, ref_samples, ref_mean, ref_std, cv, ref_max_score,
    max_score, n_samples, n_unscored, solved_by, level.
    """
    teachers = list(teachers)
    if reference not in teachers:
        raise ValueError(f"reference teacher {reference!r} is not among the teachers {teachers}")
    lf = scored_frame(outcomes.filter(pl.col("teacher").is_in(teachers)), thresholds, scored_statuses)
    aggs: list[pl.Expr] = [pl.col("category").first()]
    for t in teachers:
        is_t = pl.col("teacher") == t
        aggs.append((is_t & pl.col("scored")).sum().cast(pl.Int32).alias(samples_column(t)))
        aggs.append((is_t & pl.col("pass")).sum().cast(pl.Int32).alias("_pass_" + samples_column(t)))
    ref_score = pl.when(pl.col("teacher") == reference).then(pl.col("score"))
    aggs += [
        ref_score.count().cast(pl.Int32).alias("ref_samples"),
        ref_score.mean().alias("ref_mean"),
        ref_score.std(ddof=ddof).alias("ref_std"),
        ref_score.max().alias("ref_max_score"),
        pl.col("score").max().alias("max_score"),
        pl.col("scored").sum().cast(pl.Int32).alias("n_samples"),
        (~pl.col("scored")).sum().cast(pl.Int32).alias("n_unscored"),
    ]
    grouped = lf.group_by("query_id").agg(aggs)

    rates = []
    for t in teachers:
        n, k = pl.col(samples_column(t)), pl.col("_pass_" + samples_column(t))
        rates.append(pl.when(n > 0).then(k / n).alias(pass_rate_column(t)))
    out = grouped.with_columns(rates).with_columns(
        threshold_expr(thresholds).alias("threshold"),
        pl.lit(reference).alias("reference_teacher"),
        pl.when(pl.col("ref_samples") > ddof).then(pl.col("ref_std")).alias("ref_std"),
        cv_expr(pl.col("ref_mean"), pl.col("ref_std"), pl.col("ref_samples"), ddof).alias("cv"),
        pl.struct([pl.col(pass_rate_column(t)).alias(t) for t in teachers]).struct.json_encode().alias("pass_rates"),
    )
    # the weakest teacher with at least one passing sample
    solved_by = pl.lit(None, dtype=pl.String)
    for t in reversed(teachers):
        solved_by = pl.when(pl.col(pass_rate_column(t)) > 0).then(pl.lit(t)).otherwise(solved_by)
    weak, strong = teachers[0], teachers[-1]
    weak_rate = pl.col(pass_rate_column(weak))
    level = (pl.when(pl.col("solved_by").is_null()).then(pl.lit("unsolved"))
             .when(weak_rate >= easy_pass_rate).then(pl.lit("easy"))
             .when((pl.col("solved_by") == strong) & pl.lit(len(teachers) > 1)).then(pl.lit("hard"))
             .otherwise(pl.lit("medium")))
    out = out.with_columns(solved_by.alias("solved_by")).with_columns(level.alias("level"))
    cols = ["query_id", "category", "threshold"]
    for t in teachers:
        cols += [pass_rate_column(t), samples_column(t)]
    cols += ["pass_rates", "reference_teacher", "ref_samples", "ref_mean", "ref_std", "cv", "ref_max_score",
             "max_score", "n_samples", "n_unscored", "solved_by", "level"]
    return out.select(cols)


def coefficient_of_variation(scores: Sequence[float], ddof: int = 1) -> float | None:
    """CV of one list of scores, through the same expression difficulty_table uses."""
    s = pl.DataFrame({"s": [float(x) for x in scores]}, schema={"s": pl.Float64})
    return s.select(cv_expr(pl.col("s").mean(), pl.col("s").std(ddof=ddof), pl.col("s").count(), ddof)).item()


def level_counts(df: pl.DataFrame) -> dict[str, int]:
    counts = dict(df.group_by("level").len().iter_rows()) if df.height else {}
    return {lvl: int(counts.get(lvl, 0)) for lvl in LEVELS}
