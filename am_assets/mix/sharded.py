"""The training mix shard by shard, so peak memory grows with a shard, not with the lake.

Every selection rule is per query except four: Stage II's top-CV quota, the category quotas, the token
budget and the drop counts. Those run on a narrow global summary (ids, category, stage, tokens: tens
of bytes per selected response, no text). Pass 1 (per shard) selects and measures; the global step
cuts; pass 2 (per shard) joins the text of the survivors and hands each shard's rows to a sink.
The result is the same set of rows as `build.assemble_mix` (tests/test_scale_mix.py compares them).
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Mapping, Sequence

import polars as pl

from am_assets.mix.build import (
    DIFFICULTY_COLUMNS, QUERY_COLUMNS, RESPONSE_COLUMNS, SELECTED_COLUMNS, _present, select_rows)
from am_assets.mix.export import with_messages
from am_assets.mix.select import apply_quota, apply_token_budget, uniform_expr

log = logging.getLogger(__name__)

NARROW = [*SELECTED_COLUMNS, "tokens", "shard"]


def representative_queries(queries: pl.LazyFrame) -> pl.LazyFrame:
    """The rows the mix takes text from: representatives of their dedup cluster."""
    if "representative" in queries.collect_schema().names():
        queries = queries.filter(pl.col("representative").fill_null(True))
    return queries


def select_shard(outcomes: pl.LazyFrame, difficulty: pl.LazyFrame, responses: pl.LazyFrame, queries: pl.LazyFrame,
                 *, shard: str, mix, pool_teachers: Sequence[str], thresholds: Mapping[str, float],
                 scored_statuses: Sequence[str]) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Pass 1 over one shard's scans: (narrow selected rows incl. Stage II candidates, `_ok` false for
    those without text; Stage I decisions; flagged responses of kept queries)."""
    selected, decisions, flagged = select_rows(outcomes, difficulty, mix=mix, pool_teachers=pool_teachers,
                                               thresholds=thresholds, scored_statuses=scored_statuses)
    ids = selected.select("response_id").unique().lazy()
    resp = (responses.select(_present(responses, ["response_id", "response", "completion_tokens"]))
            .join(ids, on="response_id", how="semi").unique("response_id", keep="first")
            .select("response_id",
                    pl.coalesce(pl.col("completion_tokens").cast(pl.Int64),
                                (pl.col("response").str.len_chars() // 4).cast(pl.Int64)).alias("tokens"),
                    pl.col("response").is_not_null().alias("_has_response"))
            .collect(engine="streaming"))
    qids = selected.select("query_id").unique().lazy()
    qlf = representative_queries(queries)
    have_q = (qlf.select(_present(qlf, ["query_id", "question"])).join(qids, on="query_id", how="semi")
              .filter(pl.col("question").is_not_null()).select("query_id").unique().collect(engine="streaming"))
    narrow = selected.join(resp, on="response_id", how="left")
    # rows without text are dropped after Stage II's ranking and before the quotas, as assemble_mix does
    narrow = narrow.with_columns((pl.col("_has_response").fill_null(False)
                                  & pl.col("query_id").is_in(have_q["query_id"].implode())).alias("_ok"),
                                 pl.lit(shard).alias("shard")).drop("_has_response")
    if mix.stage2:  # the CV to rank Stage II candidates globally
        cv = difficulty.select("query_id", "cv").join(qids, on="query_id", how="semi").collect(engine="streaming")
        narrow = narrow.join(cv, on="query_id", how="left")
    return narrow, decisions, int(flagged)


def global_cut(narrow: pl.DataFrame, *, mix) -> tuple[pl.DataFrame, dict]:
    """Stage II's global top-CV quota, category quotas and the token budget over every shard's narrow
    rows (the rules and seeds of build.assemble_mix); returns the surviving narrow rows and counts."""
    stage1 = narrow.filter(pl.col("stage") == "stage1")
    stage2 = narrow.filter(pl.col("stage") == "stage2")
    if mix.stage2 and stage2.height:
        limit = pl.col("category").replace_strict({k: int(v) for k, v in mix.stage2_quota.items()}, default=None,
                                                  return_dtype=pl.Int64)
        stage2 = (stage2.with_columns(uniform_expr("query_id", mix.seed, "stage2-tie").alias("_t"))
                  .sort(["cv", "_t"], descending=[True, False])
                  .with_columns(pl.int_range(pl.len()).over("category").alias("_rank"))
                  .filter(limit.is_null() | (pl.col("_rank") < limit)).drop("_t", "_rank"))
    missing = int((~stage1["_ok"]).sum() + (~stage2["_ok"]).sum())
    stage1, stage2 = stage1.filter(pl.col("_ok")), stage2.filter(pl.col("_ok"))
    before_quota = stage1.height + stage2.height
    rows = pl.concat([apply_quota(stage1, mix.quota, mix.seed), stage2])
    after_quota = rows.height
    rows = apply_token_budget(rows, mix.token_budget, mix.seed)
    return rows.select(NARROW), {"missing_text": missing, "over_quota": before_quota - after_quota, "over_token_budget": after_quota - rows.height}


def text_rows(keep: pl.DataFrame, difficulty: pl.LazyFrame, responses: pl.LazyFrame, queries: pl.LazyFrame,
              outcomes: pl.LazyFrame, *, system_prompts: Mapping[str, str], default_system_prompt: str) -> pl.DataFrame:
    """Pass 2 for one shard: the kept narrow rows with their text, chat `messages` and lineage columns
    (and the verdict cache's `content_key` of each response, from `outcomes`: what append.py compares)."""
    ids, qids = keep.select("response_id").lazy(), keep.select("query_id").unique().lazy()
    keep = keep.join(response_content_keys(outcomes, ids), on="response_id", how="left")
    resp = (responses.select(_present(responses, RESPONSE_COLUMNS)).join(ids, on="response_id", how="semi")
            .unique("response_id", keep="first").collect(engine="streaming"))
    qlf = representative_queries(queries)
    q = (qlf.select(_present(qlf, QUERY_COLUMNS)).join(qids, on="query_id", how="semi")
         .unique("query_id", keep="first").collect(engine="streaming"))
    d = difficulty.select(DIFFICULTY_COLUMNS).join(qids, on="query_id", how="semi").collect(engine="streaming")
    rows = (keep.drop("shard").join(resp, on="response_id", how="left").join(q, on="query_id", how="left")
            .join(d, on="query_id", how="left"))
    rows = rows.with_columns(pl.col("teacher").replace_strict(dict(system_prompts), default=default_system_prompt,
                                                              return_dtype=pl.String).alias("system_prompt"))
    return with_messages(rows).sort("stage", "category", "query_id", "response_id")


def select_mix(scans: Callable[[str], dict[str, pl.LazyFrame]], shards: Iterable[str], *, mix,
               pool_teachers: Sequence[str], thresholds: Mapping[str, float],
               scored_statuses: Sequence[str]) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Pass 1 over every shard and the global cut: (narrow final rows, Stage I decisions, drops)."""
    narrow, decisions, flagged = [], [], 0
    for shard in shards:
        s = scans(shard)
        n, d, f = select_shard(s["verification_outcomes"], s["difficulty_scores"], s["teacher_responses"],
                                  s["unique_queries"], shard=shard, mix=mix, pool_teachers=pool_teachers,
                                  thresholds=thresholds, scored_statuses=scored_statuses)
        narrow.append(n)
        decisions.append(d)
        flagged += f
    empty = pl.DataFrame(schema={**{c: pl.String for c in NARROW}, "verify_score": pl.Float64, "tokens": pl.Int64,
                                 "_ok": pl.Boolean, "cv": pl.Float64})
    kept, drops = global_cut(pl.concat([empty, *narrow], how="diagonal_relaxed"), mix=mix)
    if drops["missing_text"]:
        log.warning("%d selected responses have no row in teacher_responses or unique_queries; left out",
                    drops["missing_text"])
    decisions_df = pl.concat(decisions, how="diagonal_relaxed") if decisions else pl.DataFrame()
    return kept, decisions_df, {"flagged_responses": flagged, **drops}


def emit_mix(scans: Callable[[str], dict[str, pl.LazyFrame]], shards: Iterable[str], kept: pl.DataFrame, *,
             system_prompts: Mapping[str, str], default_system_prompt: str,
             sink: Callable[[str, pl.DataFrame], None]) -> None:
    """Pass 2: each shard's `kept` rows with their text, handed to `sink(shard, rows)`."""
    for shard in shards:
        keep = kept.filter(pl.col("shard") == shard)
        if keep.height:
            s = scans(shard)
            sink(shard, text_rows(keep, s["difficulty_scores"], s["teacher_responses"], s["unique_queries"],
                                  s["verification_outcomes"], system_prompts=system_prompts,
                                  default_system_prompt=default_system_prompt))


def response_content_keys(outcomes: pl.LazyFrame, ids: pl.LazyFrame) -> pl.DataFrame:
    """response_id, content_key (the verdict cache's key: null in outcome tables from before it) of `ids`."""
    have = outcomes.collect_schema().names()
    key = pl.col("content_key") if "content_key" in have else pl.lit(None, pl.String).alias("content_key")
    return (outcomes.select("response_id", key).join(ids, on="response_id", how="semi")
            .unique("response_id", keep="first").collect(engine="streaming"))
