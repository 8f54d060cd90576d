"""Verifier health: the share of rows per verifier that got no verdict because the verifier could not
answer (`unparseable`, `verifier_error`, `timeout`). A judge that cannot read its own replies must be
loud, not a silent pass rate of 0. Plain functions; the asset reports them, the check judges them."""

from __future__ import annotations

import polars as pl

FAILURE_STATUSES = ("unparseable", "verifier_error", "timeout")
# rows of failed generations or missing query rows carry verifier "none": not a verifier's failure
NOT_A_VERIFIER = ("none",)


def verifier_health(outcomes: pl.DataFrame) -> pl.DataFrame:
    """One row per verifier: rows, count per failure status, failures and their share of the rows."""
    schema = {"verifier": pl.String, "rows": pl.Int64, **{s: pl.Int64 for s in FAILURE_STATUSES},
              "failures": pl.Int64, "failure_share": pl.Float64}
    if outcomes.height == 0:
        return pl.DataFrame(schema=schema)
    status = pl.col("status")
    return (outcomes.filter(~pl.col("verifier").is_in(NOT_A_VERIFIER))
            .group_by("verifier")
            .agg(pl.len().cast(pl.Int64).alias("rows"),
                 *[(status == s).sum().cast(pl.Int64).alias(s) for s in FAILURE_STATUSES],
                 status.is_in(FAILURE_STATUSES).sum().cast(pl.Int64).alias("failures"))
            .with_columns((pl.col("failures") / pl.col("rows")).round(4).alias("failure_share"))
            .sort("verifier").select(list(schema)))


def health_metadata(health: pl.DataFrame) -> dict[str, dict]:
    """verifier -> {rows, unparseable, verifier_error, timeout, failures, failure_share} (JSON metadata)."""
    return {r.pop("verifier"): r for r in health.to_dicts()}


def unhealthy(health: pl.DataFrame, max_share: float) -> pl.DataFrame:
    """The verifiers whose failure share is above `max_share`."""
    return health.filter(pl.col("failure_share") > max_share)


def health_verdict(health: pl.DataFrame, max_share: float) -> tuple[bool, str]:
    """(passed, description) for the asset check: names each failing verifier, its share and count."""
    bad = unhealthy(health, max_share)
    if bad.height == 0:
        worst = health.sort("failure_share", descending=True).head(1).to_dicts()
        tail = f"; highest {worst[0]['verifier']} {worst[0]['failure_share']:.1%}" if worst else ""
        return True, f"every verifier answered at least {1 - max_share:.0%} of its rows{tail}"
    parts = [f"{r['verifier']}: {r['failure_share']:.1%} ({r['failures']} of {r['rows']} rows; "
             + ", ".join(f"{s} {r[s]}" for s in FAILURE_STATUSES if r[s]) + ")" for r in bad.to_dicts()]
    return False, f"verifiers above the {max_share:.0%} failure share: " + "; ".join(parts)
