"""verification_outcomes through Dagster on a real Delta lake: verdicts per category, statuses, flags,
and the row cache (a re-run verifies only new responses; a threshold change re-verifies nothing)."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest
import reasoning_gym

from am_assets.ingest.adapters import humaneval_rows
from am_assets.core.schema import QUERY_SCHEMA
from tests.conftest import materialize

KEY = dg.MultiPartitionKey({"teacher": "t1", "shard": "s00"})
PART = {"teacher": "t1", "shard": "s00"}


def _config(thresholds=None):
    verification = {"sandbox": "local", "math_workers": 1, "code_timeout_s": 5.0}
    if thresholds:
        verification["thresholds"] = thresholds
    return {"shards": 1, "teachers": [{"name": "t1", "kind": "vllm"}], "verification": verification}


def _query(qid, category, question, reference=None, tests=None, constraints=None, metadata=None):
    return {"query_id": qid, "source": "test", "source_file": "inline", "source_row": qid, "category": category,
            "question": question, "reference_answer": reference, "test_cases": tests,
            "instruction_constraints": constraints, "metadata": json.dumps(metadata or {}),
            "cluster_id": qid, "representative": True, "duplicate_of": None, "contaminated_by": None}


def _response(rid, qid, answer, think="some reasoning", status="ok", truncated=False, response=None):
    return {"response_id": rid, "query_id": qid, "sample_idx": 0, "fingerprint": "fp", "model": "m", "engine": "vllm",
            "sampling": "{}", "response": response or f"<think>{think}</think><answer>{answer}</answer>",
            "think": think, "answer": answer, "finish_reason": "length" if truncated else "stop",
            "truncated": truncated, "prompt_tokens": 10, "completion_tokens": 20, "latency_s": 0.1,
            "status": status, "error": None if status == "ok" else "engine exploded"}


@pytest.fixture
def seeded(project):
    project.write(_config())
    he = next(humaneval_rows(limit=1))
    meta = json.loads(he["metadata"])
    kk = reasoning_gym.create_dataset("knights_knaves", size=1, seed=5)[0]
    rg_meta = {"reasoning_gym": {"dataset": "knights_knaves", "entry_metadata": kk["metadata"]}}
    ifc = json.dumps([{"id": "punctuation:no_comma", "kwargs": {}},
                      {"id": "keywords:existence", "kwargs": {"keywords": ["banana"]}}])
    queries = [
        _query("qm", "math", "What is 6*7?", "42"),
        _query("qn", "math", "A math question without a reference"),
        _query("qc", "code", he["question"], tests=he["test_cases"]),
        _query("qi", "if", "Write about bananas without commas.", constraints=ifc),
        _query("qr", "other", kk["question"], kk["answer"], metadata=rg_meta),
    ]
    responses = [
        _response("r1", "qm", "The product is \\boxed{42}."),
        _response("r2", "qm", "The product is \\boxed{48}."),
        _response("r3", "qn", "\\boxed{1}"),
        _response("r4", "qc", f"```python\n{meta['prompt']}{meta['canonical_solution']}```"),
        _response("r5", "qc", f"```python\n{meta['prompt']}    return None\n```"),
        _response("r6", "qi", "I like banana bread, a lot."),
        _response("r7", "qr", f"\\boxed{{{kk['answer']}}}"),
        _response("r8", "qm", None, status="error"),
        _response("r9", "q-missing", "\\boxed{2}"),
        _response("r10", "qm", "", think="still thinking " * 50, truncated=True),
    ]
    lake = project.lake()
    lake.write_partition("unique_queries", pl.DataFrame(queries, schema={**QUERY_SCHEMA, "cluster_id": pl.String,
                         "representative": pl.Boolean, "duplicate_of": pl.String, "contaminated_by": pl.String}),
                         {"shard": "s00"})
    lake.write_partition("teacher_responses", pl.DataFrame(responses, infer_schema_length=None), PART)
    return project, lake, responses


def _run(project, instance):
    result = materialize(project.defs(), instance, ["verification_outcomes"], partition_key=KEY)
    mat = result.asset_materializations_for_node("verification_outcomes")[0]
    out = project.lake().read("verification_outcomes", PART).sort("response_id")
    return {r["response_id"]: r for r in out.to_dicts()}, {k: v.value for k, v in mat.metadata.items()}


def test_verification_outcomes_verdicts_statuses_and_flags(seeded, instance):
    project, _, responses = seeded
    rows, meta = _run(project, instance)
    assert set(rows) == {r["response_id"] for r in responses}
    got = {rid: (r["verifier"], r["status"], r["verify_score"], r["passed"]) for rid, r in rows.items()}
    assert got["r1"][1:] == ("ok", 1.0, True) and got["r1"][0] == "math-verify"
    assert got["r2"][1:] == ("ok", 0.0, False)
    assert got["r3"][1:3] == ("no_reference", 0.0) and not got["r3"][3]
    assert got["r4"] == ("code-sandbox", "ok", 1.0, True)
    assert got["r5"] == ("code-sandbox", "ok", 0.0, False)
    assert got["r6"] == ("ifeval", "ok", 0.5, False)
    assert got["r7"] == ("reasoning-gym", "ok", 1.0, True)
    assert got["r8"][1] == "verifier_error" and "generation failed" in rows["r8"]["details"]
    assert got["r9"][1] == "no_reference" and rows["r9"]["category"] is None
    assert rows["r10"]["truncated"] and not rows["r10"]["has_answer"] and rows["r10"]["has_think"]
    assert got["r10"][1:] == ("truncated", 0.0, False) and "finish_reason length" in rows["r10"]["details"]
    assert rows["r10"]["repetitive"] and rows["r10"]["perplexity"] is None  # "still thinking" x 50 loops
    assert not any(r["repetitive"] for rid, r in rows.items() if rid != "r10")
    assert json.loads(rows["r4"]["details"])["tests_total"] == 1
    assert rows["r1"]["verifier_version"].startswith("math-verify-")
    # r8 failed to generate, r9 has no query, r10 is truncated: decided before any verifier runs
    assert meta["verified"] == 7 and meta["reused_from_cache"] == 0
    assert meta["status_counts"]["ok"] == 6 and meta["status_counts"]["truncated"] == 1
    assert meta["pass_rate"] == pytest.approx(0.3)


def test_rerun_verifies_only_new_responses_and_thresholds_do_not_reverify(seeded, instance):
    project, lake, responses = seeded
    first, _ = _run(project, instance)
    again, meta = _run(project, instance)
    assert meta["verified"] == 0 and meta["reused_from_cache"] == 7
    assert {k: v["verify_score"] for k, v in again.items()} == {k: v["verify_score"] for k, v in first.items()}

    # a new response: only it is verified
    lake.write_partition("teacher_responses", pl.DataFrame(
        responses + [_response("r11", "qm", "so \\boxed{42}")], infer_schema_length=None), PART)
    rows, meta = _run(project, instance)
    assert meta["verified"] == 1 and meta["reused_from_cache"] == 7 and rows["r11"]["passed"]

    # a changed reference answer re-verifies that query's responses only
    queries = lake.read("unique_queries", {"shard": "s00"}).drop("shard").with_columns(
        pl.when(pl.col("query_id") == "qm").then(pl.lit("48")).otherwise(pl.col("reference_answer"))
        .alias("reference_answer"))
    lake.write_partition("unique_queries", queries, {"shard": "s00"})
    rows, meta = _run(project, instance)
    assert meta["verified"] == 3 and meta["reused_from_cache"] == 5  # r1, r2, r11 answer qm (r10 is cut off)
    assert rows["r2"]["passed"] and not rows["r1"]["passed"]

    # a stricter threshold changes `passed`, not the cached scores
    project.write(_config(thresholds={"math": 0.99, "code": 0.99, "if": 0.4, "science": 4.99, "other": 0.7}))
    rows, meta = _run(project, instance)
    assert meta["verified"] == 0
    assert rows["r6"]["passed"] and rows["r6"]["verify_score"] == 0.5
