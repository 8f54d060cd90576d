"""training_mix appends the rows of new queries when every stored row is selected again unchanged
(am_assets/mix/append.py), and the appended table and exports hold what a rebuild gives.

Real MATH test problems (without figures) through the runner (import teachers: no vLLM), as in
test_verify_new_files:
a source added (the mix appends), then a rebuild forced by an edited export (the same rows and files
but for the stored rows' `input_versions`), then each condition that must send the mix to a rebuild.
"""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest
import yaml

from am_assets.difficulty.api import teachers_from_config
from am_assets.mix.append import plan_append, row_hash_sum, rows_digest
from am_assets.mix.assets import INPUTS, TABLE_COLUMNS, _shard_scans, mix_settings_hash
from am_assets.mix.sharded import select_mix
from am_distill.cli.runner import materialize_all
from benchmarks.scale import upstream_names
from definitions import build_defs
from resources.config import load_config, shard_key
from resources.lake import LakeResource
from tests.test_verify_new_files import DATA, make_project

MIX = "training_mix"


@pytest.fixture()
def project(tmp_path):
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (see ../shared/data/SOURCES.md)")
    return make_project(tmp_path, teachers=2, asy=False)


def _build(root, config: str, instance) -> dict:
    defs = build_defs(root / config)
    report = materialize_all(defs, instance, select=upstream_names(defs), log=lambda *_: None)
    assert not report.failures, report.failures
    assert (MIX, None) in report.ran, report.ran
    return report.metadata[(MIX, None)]


def _rebuild_mix(root, config: str, instance) -> dict:
    """training_mix alone, as launched from the UI."""
    defs = build_defs(root / config)
    result = dg.materialize(list(defs.assets), selection=[MIX], instance=instance, resources=defs.resources)
    mat = result.asset_materializations_for_node(MIX)[0]
    return {k: v.value for k, v in mat.metadata.items()} | {"data_version": mat.tags["dagster/data_version"]}


def _exports(root) -> dict[str, list]:
    """Each export's rows, without `input_versions`, in a set order."""
    out = {}
    for path in sorted((root / "exports").glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        out[path.name] = sorted(json.dumps({k: v for k, v in r.items() if k != "input_versions"}, sort_keys=True)
                                for r in rows)
    parquet = pl.read_parquet(root / "exports" / "training_mix.parquet").drop("input_versions")
    out["parquet"] = parquet.sort("mix_row_id").to_dicts()
    return out


def _latest_data_version(instance) -> str:
    record = instance.get_latest_materialization_event(dg.AssetKey(MIX))
    return record.asset_materialization.tags["dagster/data_version"]


def test_a_new_source_appends_what_a_rebuild_gives(project):
    lake = LakeResource(root=str(project / "lake"))
    with dg.instance_for_test() as instance:
        first = _build(project, "pipeline.yaml", instance)
        assert first["appended"] is False
        stored = lake.read(MIX)

        plus = _build(project, "plus.yaml", instance)
        assert plus["appended"] is True and plus["appended_rows"] > 0
        appended = lake.read(MIX)
        assert appended.height == stored.height + plus["appended_rows"] == plus["dagster/row_count"]
        # stored rows kept as they were, their input_versions included; the new ones carry the current
        kept = appended.join(stored.select("mix_row_id"), on="mix_row_id", how="semi")
        assert kept.sort("mix_row_id").equals(stored.sort("mix_row_id"))
        assert appended.join(stored.select("mix_row_id"), on="mix_row_id", how="anti")["input_versions"].n_unique() == 1
        assert _latest_data_version(instance) == rows_digest(appended.schema, appended.height, row_hash_sum(appended))
        exports = _exports(project)

        # an edited export: rebuilt; same rows and exports but the stored rows' input_versions
        with open(project / "exports" / "chat_stage1.jsonl", "a") as f:
            f.write("\n")
        rebuilt = _rebuild_mix(project, "plus.yaml", instance)
        assert rebuilt["appended"] is False
        again = lake.read(MIX)
        assert again.drop("input_versions").sort("mix_row_id").equals(appended.drop("input_versions").sort("mix_row_id"))
        assert again["input_versions"].n_unique() == 1
        assert _exports(project) == exports

        # a rebuild with nothing changed since appends nothing and keeps the table
        version = lake.version(MIX)
        assert _rebuild_mix(project, "plus.yaml", instance)["appended_rows"] == 0
        assert lake.version(MIX) == version


def test_what_sends_the_mix_to_a_rebuild(project):
    lake = LakeResource(root=str(project / "lake"))
    cfg = yaml.safe_load((project / "plus.yaml").read_text())
    with dg.instance_for_test() as instance:
        _build(project, "plus.yaml", instance)
        assert _rebuild_mix(project, "plus.yaml", instance)["appended"] is True  # nothing changed: appends nothing

        # another setting (every stored row carries the settings hash)
        cfg["mix"]["seed"] = 7
        (project / "plus.yaml").write_text(yaml.safe_dump(cfg))
        assert _rebuild_mix(project, "plus.yaml", instance)["appended"] is False

        # an export removed
        (project / "exports" / "am_40m_stage1.jsonl").unlink()
        assert _rebuild_mix(project, "plus.yaml", instance)["appended"] is False
        assert (project / "exports" / "am_40m_stage1.jsonl").exists()

        # a stored row's input changed: its teacher_responses row (same id, other tokens)
        part = {"teacher": "t1", "shard": "s00"}  # the reference teacher: the rows of the mix
        responses = lake.read("teacher_responses", part)
        lake.write_partition("teacher_responses", responses.with_columns(prompt_tokens=pl.lit(99, pl.Int64)), part)
        assert _rebuild_mix(project, "plus.yaml", instance)["appended"] is False
        assert (lake.read(MIX)["prompt_tokens"] == 99).all()

        # the selection, as the asset computes it: whole, a stored row displaced, a stored row rescored
        loaded = load_config(project / "plus.yaml")
        versions = {t: lake.version(t) for t in INPUTS}
        scans, shards = _shard_scans(lake, versions), [shard_key(i) for i in range(loaded.shards)]
        teachers, reference = teachers_from_config(loaded)
        kept, _, _ = select_mix(scans, shards, mix=loaded.mix, pool_teachers=[reference],
                                thresholds=loaded.verification.thresholds,
                                scored_statuses=loaded.difficulty.scored_statuses)

        def plan(rows):
            return plan_append(lake, rows, scans, shards, settings_hash=mix_settings_hash(loaded),
                               export_dir=loaded.mix.export_dir, columns=TABLE_COLUMNS)

        added, _, why = plan(kept)
        assert why == "ok" and added.height == 0
        assert plan(kept.slice(1))[2] == "a stored row is no longer selected as it was"
        rescored = kept.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(0.5).otherwise(pl.col("verify_score"))
                                     .alias("verify_score"))
        assert plan(rescored)[2] == "a stored row is no longer selected as it was"
