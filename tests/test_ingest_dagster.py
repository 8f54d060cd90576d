"""raw_queries and clean_queries materialized through Dagster into a real Delta lake."""

import gzip
import json

import dagster as dg
import polars as pl
import pytest

from tests.conftest import materialize, shared

SHARED_SOURCES = {
    # name: (relative path, config, expected rows = lines in the file)
    "gsm8k_test": ("gsm8k/test.jsonl", {"mapping": {"question": "question", "answer": "answer", "answer_format": "gsm8k"},
                                        "category": "math"}),
    "math500": ("math/math500_test.jsonl", {"mapping": {"question": "problem", "answer": "answer", "id": "unique_id"},
                                            "category": "math"}),
    "mbpp": ("code/mbpp.jsonl", {"mapping": {"question": "text", "test_cases": "test_list", "id": "task_id"}}),
    "aime24": ("competition_math/aime24_qwen25math.jsonl", {"mapping": {"question": "problem", "answer": "answer", "id": "id"},
                                                            "category": "math"}),
    "math_test": ("math/math_test5000.json.gz", {"mapping": {"question": "problem", "answer": "solution", "answer_format": "boxed",
                                                             "id": "idx"}, "category": "math"}),
}


def _count_records(path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return sum(1 for line in f if line.strip())


def test_generators_through_dagster(project, instance):
    project.write({"sources": [
        {"name": "rg", "kind": "reasoning_gym", "datasets": ["basic_arithmetic", "chain_sum"], "count": 10},
        {"name": "humaneval", "kind": "humaneval"},
    ]})
    defs = project.defs()
    for name in ("rg", "humaneval"):
        result = materialize(defs, instance, ["raw_queries", "clean_queries"], partition_key=name)
        assert result.success
    lake = project.lake()
    raw = lake.scan("raw_queries").collect()
    assert raw.group_by("source").len().sort("source").rows() == [("humaneval", 164), ("rg", 20)]
    clean = lake.scan("clean_queries", {"source": "rg"}).collect()
    assert clean.height == 20 and "drop_reason" in clean.columns
    mat = result.asset_materializations_for_node("clean_queries")[0]
    assert mat.metadata["dagster/row_count"].value == 164
    assert mat.tags["dagster/data_version"]


def test_shared_files_row_counts(project, instance):
    sources = []
    for name, (rel, extra) in SHARED_SOURCES.items():
        sources.append({"name": name, "kind": "file", "path": str(shared(rel)), **extra})
    project.write({"sources": sources})
    defs = project.defs()
    for name in SHARED_SOURCES:
        assert materialize(defs, instance, ["raw_queries", "clean_queries"], partition_key=name).success
    lake = project.lake()
    counts = dict(lake.scan("raw_queries").group_by("source").len().collect().rows())
    rejected = lake.read("rejected_rows")
    for name, (rel, _) in SHARED_SOURCES.items():
        n_rejected = rejected.filter(pl.col("source") == name).height if rejected.height else 0
        assert counts[name] + n_rejected == _count_records(shared(rel)), name
    assert counts == {"gsm8k_test": 1319, "math500": 500, "mbpp": 974, "aime24": 30, "math_test": 5000}
    gsm = lake.scan("raw_queries", {"source": "gsm8k_test"}).collect()
    assert gsm["reference_answer"].null_count() == 0 and gsm["category"].unique().to_list() == ["math"]
    mbpp = lake.scan("raw_queries", {"source": "mbpp"}).filter(pl.col("source_row") == "11").collect()
    assert json.loads(mbpp["test_cases"][0])["type"] == "asserts"


def test_rematerializing_one_partition_leaves_others_untouched(project, instance, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"question": f"What is {i} plus {i}?"}) + "\n" for i in range(5)))
    b.write_text("".join(json.dumps({"question": f"What is {i} times {i}?"}) + "\n" for i in range(7)))
    project.write({"sources": [{"name": "a", "kind": "file", "path": str(a)},
                               {"name": "b", "kind": "file", "path": str(b)}]})
    defs = project.defs()
    for name in ("a", "b"):
        materialize(defs, instance, ["raw_queries"], partition_key=name)
    lake = project.lake()
    b_files = {f for f in lake.table("raw_queries").file_uris() if "source=b" in f}

    a.write_text("".join(json.dumps({"question": f"What is {i} minus {i}?"}) + "\n" for i in range(3)))
    result = materialize(defs, instance, ["raw_queries"], partition_key="a")

    raw = lake.scan("raw_queries").collect()
    assert dict(raw.group_by("source").len().rows()) == {"a": 3, "b": 7}
    assert {f for f in lake.table("raw_queries").file_uris() if "source=b" in f} == b_files
    last = lake.history("raw_queries", limit=1)[0]
    assert last["operation"] == "WRITE" and "source = 'a'" in last["operationParameters"]["predicate"]
    assert last["dagster_run_id"] == result.run_id
    assert last["dagster_partition"] == "a" and last["dagster_asset_key"] == "raw_queries"
    assert last["dagster_code_version"] == "1"


def test_rejected_rows_table_and_log(project, instance, tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_text('{"question": "What is 2+2?"}\n{"question": 5}\nnot json\n')
    project.write({"sources": [{"name": "mixed", "kind": "file", "path": str(f)}]})
    result = materialize(project.defs(), instance, ["raw_queries"], partition_key="mixed")
    rejected = project.lake().read("rejected_rows", {"source": "mixed"})
    assert sorted(rejected["source_row"].to_list()) == ["2", "3"]
    logs = [e.message for e in instance.all_logs(result.run_id) if e.user_message]
    assert any("2 rows of mixed rejected" in (m or "") and "rejected_rows" in m for m in logs)


def test_missing_file_fails_the_partition_naming_the_path(project, instance, tmp_path):
    f = tmp_path / "soon_gone.jsonl"
    f.write_text('{"question": "What is 2+2?"}\n')
    project.write({"sources": [{"name": "gone", "kind": "file", "path": str(f)}]})
    defs = project.defs()
    instance.add_dynamic_partitions("source", ["gone"])
    f.unlink()
    result = dg.materialize(list(defs.assets), selection=["raw_queries"], partition_key="gone", instance=instance,
                            resources=defs.resources, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    err, text = failure.event_specific_data.error, ""
    while err is not None:
        text, err = text + err.message, err.cause
    assert "no such file" in text and str(f) in text


def test_content_hash_data_version_is_stable(project, instance, tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text('{"question": "What is 2+2?"}\n')
    project.write({"sources": [{"name": "s", "kind": "file", "path": str(f)}]})
    defs = project.defs()
    v = [materialize(defs, instance, ["raw_queries"], partition_key="s")
         .asset_materializations_for_node("raw_queries")[0].tags["dagster/data_version"] for _ in range(2)]
    assert v[0] == v[1]


@pytest.mark.parametrize("cmd", [["dagster", "definitions", "validate", "-f", "definitions.py"]])
def test_definitions_validate_cli(cmd):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    exe = Path(sys.executable).parent / cmd[0]
    out = subprocess.run([str(exe), *cmd[1:]], cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed validation" in out.stdout + out.stderr
