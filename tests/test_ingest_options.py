"""Source options on real files: filter, sample, limit, category_map; and a failed partition that does
not stop the others."""

from __future__ import annotations

import gzip
import json

import pytest

from am_assets.ingest.logic import ingest_source
from am_assets.ingest.select import SelectionStats
from am_distill.cli.runner import MaterializationFailed, materialize_all
from resources.config import CleaningConfig, ConfigError, FileSource, HumanEvalSource, ReasoningGymSource
from tests.conftest import shared

MAPPING = {"question": "problem", "answer": "answer"}


@pytest.fixture(scope="module")
def math500():
    path = shared("math/math500_test.jsonl")
    return path, [json.loads(line) for line in path.read_text().splitlines()]


def _ingest(**settings):
    stats = SelectionStats()
    rows, rejected = ingest_source(FileSource(name="m", kind="file", **{"mapping": MAPPING, **settings}),
                                   CleaningConfig(), stats)
    return rows, rejected, stats


def test_filter_as_a_polars_expression_or_a_field_map(math500):
    path, records = math500
    rows, rejected, stats = _ingest(path=path, filter='pl.col("level") >= 4')
    want = [r for r in records if r["level"] >= 4]
    assert rows.height == len(want) and rejected.height == 0 and stats.filtered_out == len(records) - len(want)
    assert set(rows["question"]) == {r["problem"] for r in want}

    rows, _, stats = _ingest(path=path, filter={"subject": ["Algebra", "Geometry"], "level": 5})
    want = [r for r in records if r["subject"] in ("Algebra", "Geometry") and r["level"] == 5]
    assert rows.height == len(want) > 0 and stats.filtered_out == len(records) - len(want)


def test_a_filter_that_cannot_be_evaluated_rejects_rows_with_the_reason(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps({"question": f"What is {i}+1?", "answer": str(i + 1), "level": "high"})
                              for i in range(3)) + "\n")
    rows, rejected, _ = _ingest(path=path, mapping={"question": "question", "answer": "answer"},
                                filter='pl.col("level") > 3')
    assert rows.height == 0 and rejected.height == 3
    assert set(rejected["field"]) == {"filter"} and "cannot be evaluated" in rejected["error"][0]


def test_sample_is_seeded_and_stable_when_the_file_grows(math500, tmp_path):
    path, records = math500
    half = tmp_path / "first_half.jsonl.gz"
    with gzip.open(half, "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in records[:250]) + "\n")
    spec = {"fraction": 0.3, "seed": 7}
    small, _, _ = _ingest(path=half, sample=spec)
    full, _, stats = _ingest(path=path, sample=spec)
    assert 100 <= full.height <= 200 and stats.sampled_out == 500 - full.height
    first_half = {r["problem"] for r in records[:250]}
    assert set(small["query_id"]) == set(full.filter(full["question"].is_in(list(first_half)))["query_id"])
    other_seed, _, _ = _ingest(path=path, sample={"fraction": 0.3, "seed": 8})
    assert set(other_seed["query_id"]) != set(full["query_id"])


def test_limit_takes_the_first_rows_after_filter_and_sample(math500):
    path, records = math500
    rows, _, stats = _ingest(path=path, limit=10)
    assert rows["source_row"].to_list() == [str(i) for i in range(1, 11)] and stats.limit_reached
    rows, _, _ = _ingest(path=path, limit=5, filter={"level": 1})
    assert rows["question"].to_list() == [r["problem"] for r in records if r["level"] == 1][:5]


def test_category_map_renames_the_files_own_categories(tmp_path):
    path = tmp_path / "am40m.jsonl"
    rows = [{"question": "Why is the sky blue?", "answer": "<think>x</think><answer>Rayleigh</answer>",
             "category": "Physics", "ground_truth": "Rayleigh scattering"},
            {"question": "Sort [3,1,2].", "answer": "...", "category": "coding", "ground_truth": "[1,2,3]"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    got, rejected, _ = _ingest(path=path, layout="am_40m", category_map={"Physics": "science"}, mapping={})
    assert got["category"].to_list() == ["science", "code"] and rejected.height == 0
    _, rejected, _ = _ingest(path=path, layout="am_40m", mapping={})
    assert rejected.height == 1 and "unknown category 'Physics'" in rejected["error"][0]


def test_options_apply_to_generated_sources_too():
    rows, _ = ingest_source(HumanEvalSource(name="he", kind="humaneval", limit=3), CleaningConfig())
    assert rows.height == 3
    rg = ReasoningGymSource(name="rg", kind="reasoning_gym", datasets=["basic_arithmetic", "knights_knaves"], count=5,
                            filter={"category": "other"})
    rows, _ = ingest_source(rg, CleaningConfig())
    assert rows.height == 5 and set(rows["category"]) == {"other"}


def test_a_bad_filter_is_a_config_error_naming_the_key(project):
    project.write({"sources": [{"name": "m", "kind": "file", "path": "x.jsonl", "filter": "pl.col('a') +"}],
                   "teachers": [{"name": "t", "kind": "vllm"}]})
    with pytest.raises(ConfigError, match="filter"):
        project.cfg()


def test_one_failed_partition_does_not_stop_the_others(project, instance, math500, tmp_path):
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"problem": "x", "answer": "1"}\n' * 50)[:40])  # cut off mid-stream
    project.write({"shards": 1, "teachers": [{"name": "t", "kind": "vllm"}],
                   "sources": [{"name": "good", "kind": "file", "path": str(math500[0]), "mapping": MAPPING,
                                "limit": 20},
                               {"name": "broken", "kind": "file", "path": str(broken), "mapping": MAPPING}]})
    with pytest.raises(MaterializationFailed) as failed:
        materialize_all(project.defs(), instance, select=["raw_queries"], log=lambda m: None)
    assert "raw_queries [broken]" in str(failed.value) and str(broken) in str(failed.value)
    assert "good" not in str(failed.value).split("failed")[1]
    assert project.lake().read("raw_queries", {"source": "good"}).height == 20


def test_validate_data_reads_the_first_rows_and_fails_on_an_empty_source(project, tmp_path, math500):
    import subprocess
    import sys

    from tests.conftest import PROJECT_DIR

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": 5}\n{"text": "no problem field"}\nnot json\n')
    project.write({"teachers": [{"name": "t", "kind": "vllm"}],
                   "sources": [{"name": "good", "kind": "file", "path": str(math500[0]), "mapping": MAPPING},
                               {"name": "bad", "kind": "file", "path": str(bad), "mapping": MAPPING}],
                   "benchmarks": [{"name": "he", "kind": "humaneval", "limit": 3}]})
    proc = subprocess.run([sys.executable, "-m", "am_distill.cli", "-c", str(project.config_path), "validate", "--data",
                           "--rows", "50"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "source good: 50 rows, 0 rejected; categories {'math': 50}" in proc.stdout
    assert "source bad: 0 rows, 3 rejected" in proc.stdout and "row 1 problem" in proc.stdout
    assert "benchmark he: 3 rows" in proc.stdout and "'check': 3" in proc.stdout
    assert "source bad" in proc.stderr and "source good" not in proc.stderr
