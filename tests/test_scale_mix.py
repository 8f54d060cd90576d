"""Bounded-memory global steps give exactly the old all-in-memory results (issue 18).

difficulty_scores is computed per shard; here every shard's table is compared with `difficulty_table`
over all outcomes at once. training_mix is built shard by shard (am_assets/mix/sharded.py); the table,
drop counts, Stage I decisions, data version and Parquet export are compared with the old
`assemble_mix` over whole-lake scans, with Stage II, a category quota and a token budget switched on
so the global cut (the only cross-shard step) decides.
"""

import polars as pl

from am_assets.difficulty.logic import OUTCOME_COLUMNS, difficulty_table, teachers_from_config
from am_assets.mix.assets import TABLE_COLUMNS
from am_assets.mix.build import assemble_mix
from am_assets.mix.append import row_hash_sum, rows_digest
from resources.config import AM_SYSTEM_PROMPT
from tests.test_mix_dagster import build_everything

# constants the asset adds to every row, and the verdict cache key it records (mix/append.py)
STREAMED_ONLY = ["input_versions", "mix_config_hash", "content_key"]


def test_sharded_difficulty_and_mix_equal_the_all_in_memory_computation(project, instance, tmp_path):
    defs, result = build_everything(project, instance, tmp_path, quota={"math": 12}, token_budget=1500,
                                    stage2_quota={"math": 3, "code": 1})
    cfg, lake = project.cfg(), project.lake()
    teachers, reference = teachers_from_config(cfg)

    # difficulty: per shard == over the whole lake in memory
    whole = difficulty_table(lake.read("verification_outcomes").select(OUTCOME_COLUMNS).lazy(), teachers=teachers,
                             reference=reference, thresholds=cfg.verification.thresholds,
                             ddof=cfg.difficulty.cv_ddof, easy_pass_rate=cfg.difficulty.easy_pass_rate,
                             scored_statuses=cfg.difficulty.scored_statuses).collect().sort("query_id")
    per_shard = lake.read("difficulty_scores").drop("shard").sort("query_id")
    assert per_shard.height == whole.height > 40
    assert per_shard.equals(whole.select(per_shard.columns))

    # training_mix: shard by shard == assemble_mix over every shard at once
    rows, decisions, drops = assemble_mix(
        lake.scan("verification_outcomes"), lake.scan("difficulty_scores"), lake.scan("teacher_responses"),
        lake.scan("unique_queries"), mix=cfg.mix, pool_teachers=[reference], thresholds=cfg.verification.thresholds,
        scored_statuses=cfg.difficulty.scored_statuses,
        system_prompts={t.name: t.system_prompt for t in cfg.teachers}, default_system_prompt=AM_SYSTEM_PROMPT)
    cols = [c for c in TABLE_COLUMNS if c not in STREAMED_ONLY]
    table = lake.read("training_mix")
    key = ["stage", "response_id"]
    assert table.height == rows.height > 10
    assert table.select(cols).sort(key).equals(rows.select(cols).sort(key))
    # every cross-shard rule actually cut something
    assert drops["over_quota"] > 0 and drops["over_token_budget"] > 0 and set(table["stage"]) == {"stage1", "stage2"}
    assert 0 < table.filter(pl.col("stage") == "stage2").height <= 4  # top-CV 3 math + 1 code, less the budget

    mat = result.asset_materializations_for_node("training_mix")[0]
    assert mat.metadata["dropped_after_selection"].value == drops
    assert mat.metadata["dagster/row_count"].value == table.height
    # the digest of the table as read back: a rebuilt and an appended mix of the same rows agree
    assert mat.tags["dagster/data_version"] == rows_digest(table.schema, table.height, row_hash_sum(table))
    counts = {}
    for cat, dec in decisions.select("category", "decision").iter_rows():
        counts.setdefault(cat, {}).setdefault(dec, 0)
        counts[cat][dec] += 1
    assert mat.metadata["stage1_decisions"].value == counts
    export = pl.read_parquet(tmp_path / "exports" / "training_mix.parquet")
    assert sorted(export["mix_row_id"]) == sorted(table["mix_row_id"])
