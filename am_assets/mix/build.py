"""Assemble the training mix from lazy scans of the lake tables (pure Polars, no Dagster)."""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import polars as pl

from am_assets.mix.export import with_messages
from am_assets.mix.select import (
    FLAG_COLUMNS, apply_quota, apply_token_budget, pool_responses, stage1_decisions, stage1_select, stage2_select)

log = logging.getLogger(__name__)

SELECTED_COLUMNS = ["response_id", "query_id", "teacher", "category", "verify_score", "stage", "selection_reason"]
RESPONSE_COLUMNS = ["response_id", "sample_idx", "fingerprint", "model", "response", "think", "answer",
                    "completion_tokens", "prompt_tokens"]
QUERY_COLUMNS = ["query_id", "source", "question", "reference_answer", "test_cases", "instruction_constraints"]
DIFFICULTY_COLUMNS = ["query_id", "threshold", "pass_rates", "cv", "level"]


def _present(lf: pl.LazyFrame, cols: Sequence[str]) -> list[pl.Expr]:
    """The wanted columns; those the table lacks come back as nulls (older or foreign tables)."""
    have = lf.collect_schema()
    return [pl.col(c) if c in have.names() else pl.lit(None, dtype=pl.String).alias(c) for c in cols]


def outcome_columns(lf: pl.LazyFrame) -> pl.LazyFrame:
    have = set(lf.collect_schema().names())
    wanted = ["response_id", "query_id", "teacher", "category", "verify_score", "status", *FLAG_COLUMNS.values()]
    return lf.select([c for c in dict.fromkeys(wanted) if c in have])


def select_rows(outcomes: pl.LazyFrame, difficulty: pl.LazyFrame, *, mix, pool_teachers: Sequence[str],
                thresholds: Mapping[str, float], scored_statuses: Sequence[str]) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The selection pass over outcomes (the whole lake, or one shard's): (selected narrow rows of
    Stage I and, per category, the top Stage II candidates; Stage I decision per query; number of
    passing but flagged responses of kept queries)."""
    pool = pool_responses(outcome_columns(outcomes), teachers=pool_teachers, thresholds=thresholds,
                          exclude_flags=mix.exclude_flags, max_perplexity=mix.max_perplexity,
                          scored_statuses=scored_statuses)
    decisions = stage1_decisions(pool, difficulty, thresholds=thresholds, cv_threshold=mix.cv_threshold,
                                 other_keep_prob=mix.other_keep_prob, seed=mix.seed).collect(engine="streaming")
    parts = [stage1_select(pool, decisions.lazy()).select(SELECTED_COLUMNS)]
    if mix.stage2:
        # over one shard: its top `quota` per category; the global top is a subset of the shards' tops
        parts.append(stage2_select(pool, difficulty, cv_threshold=mix.cv_threshold, quota=mix.stage2_quota,
                                   seed=mix.seed).select(SELECTED_COLUMNS))
    selected = pl.concat(parts).collect(engine="streaming")
    flagged = (pool.filter(pl.col("pass") & pl.col("flagged"))
               .join(decisions.lazy().filter(pl.col("decision").str.starts_with("stage1:")), on="query_id", how="semi")
               .select(pl.len()).collect().item())
    return selected, decisions, flagged


def assemble_mix(outcomes: pl.LazyFrame, difficulty: pl.LazyFrame, responses: pl.LazyFrame, queries: pl.LazyFrame,
                 *, mix, pool_teachers: Sequence[str], thresholds: Mapping[str, float],
                 scored_statuses: Sequence[str], system_prompts: Mapping[str, str],
                 default_system_prompt: str) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """(mix rows with `messages`, Stage I decision per query, drop counts after selection).

    mix: a config MixConfig. Order: quality flags -> Stage I (and Stage II) -> category quotas
    (Stage I rows; Stage II has its own) -> token budget over every row.
    """
    selected, decisions, flagged = select_rows(outcomes, difficulty, mix=mix, pool_teachers=pool_teachers,
                                               thresholds=thresholds, scored_statuses=scored_statuses)

    ids = selected.select("response_id").unique().lazy()
    resp = (responses.select(_present(responses, RESPONSE_COLUMNS)).join(ids, on="response_id", how="semi")
            .unique("response_id", keep="first").collect(engine="streaming"))
    qlf = queries
    if "representative" in qlf.collect_schema().names():
        qlf = qlf.filter(pl.col("representative").fill_null(True))
    qids = selected.select("query_id").unique().lazy()
    q = (qlf.select(_present(qlf, QUERY_COLUMNS)).join(qids, on="query_id", how="semi")
         .unique("query_id", keep="first").collect(engine="streaming"))
    d = difficulty.select(DIFFICULTY_COLUMNS).join(qids, on="query_id", how="semi").collect(engine="streaming")

    rows = selected.join(resp, on="response_id", how="left").join(q, on="query_id", how="left").join(d, on="query_id", how="left")
    missing_text = rows.filter(pl.col("response").is_null() | pl.col("question").is_null())
    if missing_text.height:
        log.warning("%d selected responses have no row in teacher_responses or unique_queries; left out "
                    "(first response_id %s)", missing_text.height, missing_text["response_id"][0])
    rows = rows.filter(pl.col("response").is_not_null() & pl.col("question").is_not_null())
    # answer tokens as the papers count them; chars/4 when the engine reported none
    rows = rows.with_columns(pl.coalesce(pl.col("completion_tokens").cast(pl.Int64),
                                         (pl.col("response").str.len_chars() // 4).cast(pl.Int64)).alias("tokens"))
    before_quota = rows.height
    rows = pl.concat([apply_quota(rows.filter(pl.col("stage") == "stage1"), mix.quota, mix.seed),
                      rows.filter(pl.col("stage") == "stage2")])
    after_quota = rows.height
    rows = apply_token_budget(rows, mix.token_budget, mix.seed)
    rows = rows.with_columns(pl.col("teacher").replace_strict(dict(system_prompts), default=default_system_prompt,
                                                              return_dtype=pl.String).alias("system_prompt"))
    rows = with_messages(rows).sort("stage", "category", "query_id", "response_id")
    drops = {"flagged_responses": int(flagged), "missing_text": missing_text.height,
             "over_quota": before_quota - after_quota, "over_token_budget": after_quota - rows.height}
    return rows, decisions, drops
