"""teacher_responses through Dagster with the real offline vLLM engine (SmolLM2-135M on CPU, tiny settings).

One project and one engine for the module: the tests run in order on the same lake and instance.
"""

import dagster as dg
import polars as pl
import pytest
import yaml

from am_assets.distill.logic import response_id
from am_assets.core.schema import query_id
from tests.conftest import Project, materialize
from tests.distill_helpers import (vllm_engines,  # noqa: F401
                                   QUESTIONS, mkey, partition_files, stale_status, vllm_teacher,
                                   write_unique_queries)

SHARDS = {"s00": QUESTIONS[:5], "s01": QUESTIONS[5:8]}
EXCLUDED = 2  # s00: one non-representative, one contaminated

pytestmark = pytest.mark.usefixtures("vllm_engines")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, vllm_engines):
    from sensors.registry import record_observations

    project = Project(tmp_path_factory.mktemp("distill"), pool=vllm_engines)
    config = {"shards": 2, "teachers": [vllm_teacher("smol_cold", 0.3), vllm_teacher("smol_hot", 1.0)]}
    project.write(config)
    write_unique_queries(project.lake(), {"s00": SHARDS["s00"]}, excluded=EXCLUDED)
    write_unique_queries(project.lake(), {"s01": SHARDS["s01"]})
    with dg.instance_for_test() as instance:
        record_observations(instance, project.cfg())
        yield project, config, instance


def _responses(project, teacher=None):
    df = project.lake().read("teacher_responses")
    return df if teacher is None else df.filter(pl.col("teacher") == teacher)


def test_offline_rows_land_with_the_right_keys(setup):
    project, _, instance = setup
    defs = project.defs()
    result = materialize(defs, instance, ["teacher_responses"], partition_key=mkey("smol_cold", "s00"))
    mat = result.asset_materializations_for_node("teacher_responses")[0]
    df = _responses(project, "smol_cold")
    fp = project.cfg().teacher("smol_cold").fingerprint()
    eligible = [query_id(q) for q in SHARDS["s00"][EXCLUDED:]]
    expected = {response_id(q, fp, i) for q in eligible for i in range(2)}
    assert set(df["response_id"]) == expected and df.height == len(expected)
    assert (df["shard"] == "s00").all() and (df["fingerprint"] == fp).all() and (df["engine"] == "vllm").all()
    assert (df["status"] == "ok").all() and df["response"].str.len_chars().min() > 0
    assert (df["completion_tokens"] <= 32).all() and (df["prompt_tokens"] > 0).all()
    # finish_reason "length" means truncated; SmolLM ignores the tags, so its text is the answer
    assert (df.filter(pl.col("finish_reason") == "length")["truncated"]).all()
    assert df.filter(pl.col("format") == "untagged")["answer"].null_count() == 0
    assert mat.metadata["generated"].value == len(expected) and mat.metadata["dagster/row_count"].value == len(expected)
    assert mat.metadata["fingerprint"].value == fp
    # rerun: every key is present, nothing is generated and the data version is unchanged
    again = materialize(defs, instance, ["teacher_responses"], partition_key=mkey("smol_cold", "s00"))
    mat2 = again.asset_materializations_for_node("teacher_responses")[0]
    assert mat2.metadata["generated"].value == 0 and mat2.tags["dagster/data_version"] == mat.tags["dagster/data_version"]


def test_changing_one_teacher_stales_only_its_partitions(setup):
    from sensors.registry import record_observations

    project, config, instance = setup
    defs = project.defs()
    for teacher in ("smol_cold", "smol_hot"):
        for shard in SHARDS:
            materialize(defs, instance, ["teacher_responses"], partition_key=mkey(teacher, shard))
    before = _responses(project)
    cold_files = partition_files(project.lake(), "teacher_responses", "smol_cold")
    assert {stale_status(defs, instance, "teacher_responses", mkey(t, s))
            for t in ("smol_cold", "smol_hot") for s in SHARDS} == {"FRESH"}

    config["teachers"][1]["sampling"]["temperature"] = 0.8
    project.write(config)
    defs = project.defs()
    record_observations(instance, project.cfg())
    status = {(t, s): stale_status(defs, instance, "teacher_responses", mkey(t, s))
              for t in ("smol_cold", "smol_hot") for s in SHARDS}
    assert status == {("smol_cold", "s00"): "FRESH", ("smol_cold", "s01"): "FRESH",
                      ("smol_hot", "s00"): "STALE", ("smol_hot", "s01"): "STALE"}

    for shard in SHARDS:  # what the automation would run: the stale partitions only
        materialize(defs, instance, ["teacher_responses"], partition_key=mkey("smol_hot", shard))
    after = _responses(project)
    new_fp = project.cfg().teacher("smol_hot").fingerprint()
    hot = after.filter(pl.col("teacher") == "smol_hot")
    assert (hot["fingerprint"] == new_fp).all() and hot.height == before.filter(pl.col("teacher") == "smol_hot").height
    assert hot["sampling"].map_elements(lambda s: yaml.safe_load(s)["temperature"], return_dtype=pl.Float64).unique().to_list() == [0.8]
    assert partition_files(project.lake(), "teacher_responses", "smol_cold") == cold_files  # same Delta files
    cold_cols = ["response_id", "response"]
    assert before.filter(pl.col("teacher") == "smol_cold").select(cold_cols).sort("response_id").equals(
        after.filter(pl.col("teacher") == "smol_cold").select(cold_cols).sort("response_id"))
    assert stale_status(defs, instance, "teacher_responses", mkey("smol_hot", "s00")) == "FRESH"


def test_query_leaving_the_shard_is_removed_without_generation(setup):
    project, _, instance = setup
    defs = project.defs()
    kept = SHARDS["s01"][1:]
    write_unique_queries(project.lake(), {"s01": kept})
    result = materialize(defs, instance, ["teacher_responses"], partition_key=mkey("smol_cold", "s01"))
    mat = result.asset_materializations_for_node("teacher_responses")[0]
    assert mat.metadata["generated"].value == 0 and mat.metadata["removed"].value == 2
    df = _responses(project, "smol_cold").filter(pl.col("shard") == "s01")
    assert set(df["query_id"]) == {query_id(q) for q in kept} and df.height == 2 * len(kept)
