"""verification_outcomes reads only the teacher_responses files added since its last run, and its rows
equal a verification of the whole partition from scratch (am_assets/verify/stamp.py).

Real MATH test problems and solutions through the runner (an import teacher: no vLLM): each problem has
its real solution (a pass) and the solution with a wrong boxed answer (a fail); the solutions that draw an
[asy] figure share boilerplate, so with a low `repeat_max_count` adding problems flips stored rows to
repetitive. Then: a source added (only new files read), a reference answer changed (the whole partition),
and the stamp's conditions one by one on the lake that run left.
"""

from __future__ import annotations

import gzip
import json

import dagster as dg
import polars as pl
import pytest
import yaml

from am_assets.core.boxed import last_boxed
from am_assets.verify.judging import PROMPT_VERSION
from am_assets.verify.logic import OUTCOME_SCHEMA, verify_partition
from am_assets.verify.stamp import STAMP_TABLE, PartitionInputs
from am_distill.cli.runner import materialize_all
from benchmarks.scale import upstream_names
from definitions import build_defs
from resources.config import load_config
from resources.judge import JudgeResource
from resources.lake import LakeResource
from resources.pool import ModelPool
from tests.test_verify_quality import DATA

PART = {"teacher": "t0", "shard": "s00"}
KEY = "s00|t0"
OUTCOMES = "verification_outcomes"


def _problems(asy: bool) -> list[dict]:
    rows = [json.loads(line) for line in gzip.open(DATA / "math/math_test5000.json.gz", "rt")]
    rows = [r | {"answer": last_boxed(r["solution"])} for r in rows]
    rows = [r for r in rows if r["answer"] and len(r["solution"]) < 3000]
    plain = [r for r in rows if "[asy]" not in r["solution"]]
    if not asy:
        return plain[:80]
    return [r for pair in zip([r for r in rows if "[asy]" in r["solution"]][:40], plain[:40]) for r in pair]


def _write(path, rows, key):
    path.write_text("".join(json.dumps(key(r)) + "\n" for r in rows))


@pytest.fixture()
def project(tmp_path):
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (see ../shared/data/SOURCES.md)")
    return make_project(tmp_path)


def make_project(tmp_path, teachers: int = 1, asy: bool = True):
    """`teachers` 2 adds t1, so that the mix selects rows; `asy` False: no [asy] figures (no shared
    boilerplate to flip stored rows to repetitive)."""
    problems = _problems(asy)
    base, extra = problems[:50], problems[50:]
    _write(tmp_path / "base.jsonl", base, lambda r: {"question": r["problem"], "answer": r["answer"]})
    _write(tmp_path / "extra.jsonl", extra, lambda r: {"question": r["problem"], "answer": r["answer"]})
    def response(r, right=True):  # the real solution as the thinking, its boxed answer (or a wrong one) after
        return f"<think>\n{r['solution']}\n</think>\nThe answer is $\\boxed{{{'' if right else '7'}{r['answer']}}}$."

    def wrong(r):
        return response(r, right=False)

    responses = [{"question": r["problem"], "response": s} for r in problems for s in (response(r), wrong(r))]
    _write(tmp_path / "teacher.jsonl", responses, lambda r: r)
    # t1, the reference: right twice on odd problems, right and wrong on even ones (a CV above 0)
    _write(tmp_path / "teacher1.jsonl", [{"question": r["problem"], "response": s} for i, r in enumerate(problems)
                                         for s in (response(r), response(r) if i % 2 else wrong(r))], lambda r: r)
    source = {"kind": "file", "category": "math", "mapping": {"question": "question", "answer": "answer"}}
    cfg = {"lake_root": str(tmp_path / "lake"), "shards": 1, "benchmarks": [],
           "sources": [{"name": "base", "path": str(tmp_path / "base.jsonl"), **source}],
           "teachers": [{"name": f"t{i}", "kind": "import", "path": str(tmp_path / ("teacher.jsonl", "teacher1.jsonl")[i]),
                         "sampling": {"n": 2}} for i in range(teachers)],
           "dedup": {"semantic": False}, "verification": {"sandbox": "local", "repeat_max_count": 3},
           "mix": {"export_dir": str(tmp_path / "exports")}, "training": {"models_dir": str(tmp_path / "models")}}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
    cfg["sources"].append({"name": "extra", "path": str(tmp_path / "extra.jsonl"), **source})
    (tmp_path / "plus.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def _build(root, config: str, instance):
    defs = build_defs(root / config)
    report = materialize_all(defs, instance, select=upstream_names(defs), log=lambda *_: None)
    assert not report.failures, report.failures
    assert (OUTCOMES, KEY) in report.ran, report.ran
    return report.metadata.get((OUTCOMES, KEY), {})


def _from_scratch(root, config: str) -> pl.DataFrame:
    """The partition verified whole, with no cache and no stored n-gram counts."""
    lake = LakeResource(root=str(root / "lake"))
    vcfg = load_config(root / config).verification
    with ModelPool() as pool:
        df, _ = verify_partition(lake.read("teacher_responses", PART), lake.read("unique_queries", {"shard": "s00"}),
                                 pl.DataFrame(), vcfg, sandbox_factory=lambda: None, models=pool)
    return df


def _assert_same_rows(got: pl.DataFrame, want: pl.DataFrame):
    assert got.height == want.height > 0
    got, want = (d.select(list(OUTCOME_SCHEMA)).cast(OUTCOME_SCHEMA).sort("response_id") for d in (got, want))
    assert got.equals(want), got.join(want, on="response_id", suffix="_want").head(3)


def test_only_new_files_are_read_and_rows_equal_a_whole_verification(project):
    lake = LakeResource(root=str(project / "lake"))
    with dg.instance_for_test() as instance:
        first = _build(project, "pipeline.yaml", instance)
        assert first["responses_read"] == "whole partition: nothing stored yet"
        _assert_same_rows(lake.read(OUTCOMES, PART), _from_scratch(project, "pipeline.yaml"))

        plus = _build(project, "plus.yaml", instance)
        assert plus["responses_read"] == "new files only"
        assert plus["verified"] == 2 * 30 and plus["stored_rows_flagged_repetitive"] > 0
        outcomes = lake.read(OUTCOMES, PART)
        assert outcomes["repetitive"].sum() > 0 and outcomes["passed"].sum() == 80  # each real solution passes
        _assert_same_rows(outcomes, _from_scratch(project, "plus.yaml"))

        # a changed reference answer: the stored responses' query rows differ, the whole partition is read
        rows = [json.loads(line) for line in (project / "base.jsonl").read_text().splitlines()]
        rows[0]["answer"] = "12345"
        _write(project / "base.jsonl", rows, lambda r: r)
        changed = _build(project, "plus.yaml", instance)
        assert changed["responses_read"] == "whole partition: query rows of stored responses changed"
        outcomes = lake.read(OUTCOMES, PART)
        assert outcomes["passed"].sum() == 79
        _assert_same_rows(outcomes, _from_scratch(project, "plus.yaml"))


def test_each_stamp_condition_sends_the_run_to_the_whole_partition(project):
    with dg.instance_for_test() as instance:
        _build(project, "pipeline.yaml", instance)
    lake = LakeResource(root=str(project / "lake"))
    cfg = load_config(project / "pipeline.yaml")
    queries = lake.read("unique_queries", {"shard": "s00"})

    judge_version = JudgeResource(teacher=cfg.verification.judge_teacher).version(cfg, PROMPT_VERSION)

    def new_rows(vcfg=cfg.verification, queries=queries):
        inputs = PartitionInputs.open(lake, PART, vcfg, judge_version, queries)
        return inputs.new_rows(lake, lake.read(OUTCOMES, PART))

    added, why = new_rows()
    assert why == "ok" and added.height == 0  # nothing new: nothing to read
    responses = lake.read("teacher_responses", PART)
    # a new file: exactly its rows come back, with the table's columns and types
    lake.write_partition("teacher_responses", responses.head(3).with_columns(response_id=pl.lit("x") + pl.col("response_id")),
                         PART, mode="append")
    added, why = new_rows()
    assert why == "ok" and added.height == 3 and added.schema == lake.read("teacher_responses", PART).schema
    assert added["response_id"].str.starts_with("x").all() and added["shard"].to_list() == ["s00"] * 3

    assert new_rows(vcfg=cfg.verification.model_copy(update={"repeat_max_count": 4}))[1] == \
        "the verification settings or schemas changed"
    changed = queries.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("other"))
                                   .otherwise(pl.col("reference_answer")).alias("reference_answer"))
    assert new_rows(queries=changed)[1] == "query rows of stored responses changed"
    assert new_rows(queries=queries.slice(1))[1] == "query rows of stored responses changed"  # a query left

    lake.delete_rows("teacher_responses", PART, "response_id", responses["response_id"].head(1).to_list())
    assert new_rows()[1] == "teacher_responses rewrote rows of the partition"
    lake.write_partition("teacher_responses", responses, PART)
    # outcomes written without a stamp after them (a crash between the two writes, another writer)
    lake.write_partition(OUTCOMES, lake.read(OUTCOMES, PART), PART)
    assert new_rows()[1] == "the outcome partition changed since the stamp"
    lake.write_partition(STAMP_TABLE, pl.concat([lake.read(STAMP_TABLE, PART)] * 2), PART)
    assert new_rows()[1] == "no stamp of the last run's inputs"  # two rows: two runs at once
