"""Only stale partitions recompute: proved by counting partitions run and rows generated.

One small project (2 shards, two real vLLM teachers, tiny sampling) goes through the changes a user
makes, in order. After each change `dg.evaluate_automation_conditions` must request exactly the
expected partitions, and the runner (`am-distill demo`, which runs missing and stale partitions) must
run exactly those, generating exactly the expected number of responses.
"""

import json

import dagster as dg
import polars as pl
import pytest

from am_assets.core.lineage import trace
from am_distill.cli.runner import materialize_all
from sensors.registry import record_observations
from tests.conftest import BASE_ENGINE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(vllm_pool):
    """The session's model pool for the module's commands: engines load once (as in one CLI command)."""
    return vllm_pool

EASY = [(f"What is {a} + {b}? Reply with only the number.", a + b) for a, b in
        [(1, 1), (2, 3), (4, 4), (5, 2), (3, 6), (7, 1)]]
# semantically distinct from EASY and from each other, so dedup keeps each as a new representative
EXTRA = [("Tom has 3 apples and buys 4 more. How many apples does he have now?", 7),
         ("A train travels 60 km in one hour. How far does it travel in 2 hours, in km?", 120),
         ("How many legs do 5 chickens have in total?", 10)]
N = 2  # samples per query per teacher


def _teacher(name, temperature):
    return {"name": name, "kind": "vllm", **BASE_ENGINE,
            "sampling": {"n": N, "temperature": temperature, "max_tokens": 12, "seed": 3}}


def _write_questions(path, questions):
    path.write_text("".join(json.dumps({"question": q, "answer": str(a)}) + "\n" for q, a in questions))


def _requested_keys(result, graph) -> dict[str, list]:
    out = {}
    for key in graph.materializable_asset_keys:
        n = result.get_num_requested(key)
        if n:
            out[key.to_user_string()] = sorted(str(p) for p in result.get_requested_partitions(key))
    return out


# steps 2-5 stop at training_mix: what follows it, and verifier_audit (beside the mix, not upstream of it)
AFTER_MIX = {"trained_model", "model_registry", "eval_scores", "eval_report", "verifier_audit"}


def _tick(defs, instance, cursor, upto_mix=False):
    """One automation tick after the registry sensors' work: what it requests, by asset."""
    record_observations(instance, defs.resources["pipeline"].load())
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    requested = _requested_keys(result, defs.resolve_asset_graph())
    if upto_mix:
        requested = {k: v for k, v in requested.items() if k not in AFTER_MIX}
    return requested, result.cursor


def _files(lake, table, teacher):
    return sorted(f for f in lake.table(table).file_uris() if f"teacher={teacher}" in f)


def test_only_stale_partitions_recompute(project, instance, tmp_path, models):
    src = tmp_path / "easy.jsonl"
    _write_questions(src, EASY)
    config = {
        "shards": 2,
        "sources": [{"name": "easy", "kind": "file", "path": str(src), "category": "math",
                     "mapping": {"question": "question", "answer": "answer"}}],
        "benchmarks": [{"name": "bench", "kind": "reasoning_gym", "datasets": ["basic_arithmetic"], "count": 2,
                        "seed": 99, "samples": 1, "max_tokens": 12}],
        "teachers": [_teacher("t1", 1.0), _teacher("t2", 0.7)],
        "verification": {"sandbox": "local"},
        # every passing response of every teacher, so the tiny mix is never empty
        "mix": {"exclude_flags": [], "response_teachers": "all", "cv_threshold": {"math": -1.0}},
        "training": {"max_steps": 1, "global_batch": 2, "per_device_batch": 2, "max_seq_length": 256,
                     "models_dir": str(tmp_path / "models")},
        "evaluation": {"max_model_len": BASE_ENGINE["max_model_len"]},
    }
    project.write(config)
    defs, lake = project.defs(), project.lake()

    # 0. first build: everything runs once
    r0 = materialize_all(defs, instance, pool=models, log=lambda *_: None)
    assert r0.total("teacher_responses", "generated") == len(EASY) * 2 * N
    assert {a for a, _ in r0.ran} >= {"raw_queries", "unique_queries", "teacher_responses", "verification_outcomes",
                                      "difficulty_scores", "training_mix", "trained_model", "eval_scores"}
    _, cursor = _tick(defs, instance, None)  # the automation baseline

    # lineage: a training-mix row traces back to its raw row, with every table's commit
    mix_row = lake.read("training_mix").row(0, named=True)
    chain = trace(lake, mix_row["mix_row_id"])
    tables = chain["tables"]
    assert chain["response_id"] == mix_row["response_id"]
    raw = tables["raw_queries"]["rows"][0]
    assert raw["source"] == "easy" and raw["source_file"] == str(src) and raw["source_row"].isdigit()
    assert tables["unique_queries"]["rows"][0]["representative"]
    resp = tables["teacher_responses"]["rows"]
    assert len(resp) == 1 and resp[0]["fingerprint"] and json.loads(resp[0]["sampling"])["n"] == N
    assert tables["verification_outcomes"]["rows"][0]["passed"]
    assert tables["difficulty_scores"]["rows"][0]["query_id"] == chain["query_id"]
    assert tables["training_mix"]["rows"][0]["selection_reason"]
    for name, info in tables.items():
        for commit in info["commits"].values():
            assert commit["run_id"] and commit["code_version"] == "1" and commit["delta_version"] is not None, name

    # 1. nothing changed: no partition is stale, automation requests nothing, and forcing a re-run
    #    of the expensive steps generates, verifies and trains nothing
    requested, cursor = _tick(defs, instance, cursor)
    assert requested == {}
    assert materialize_all(defs, instance, pool=models, log=lambda *_: None).ran == []
    forced = materialize_all(defs, instance, pool=models, select=["teacher_responses", "verification_outcomes", "trained_model"],
                             force=True, log=lambda *_: None)
    assert forced.total("teacher_responses", "generated") == 0
    assert forced.total("verification_outcomes", "verified") == 0
    assert all(m["cached"] for (a, _), m in forced.metadata.items() if a == "trained_model")

    upto_mix = [k.to_user_string() for k in dg.AssetSelection.assets("training_mix").upstream()
                .resolve(defs.resolve_asset_graph())]

    # 2. a selection threshold changes: only training_mix is requested; nothing is generated or verified
    config["mix"]["cv_threshold"] = {"math": -0.5}
    project.write(config)
    defs = project.defs()
    requested, cursor = _tick(defs, instance, cursor)
    assert requested == {"training_mix": ["None"]}
    r2 = materialize_all(defs, instance, pool=models, select=upto_mix, log=lambda *_: None)
    assert r2.ran == [("training_mix", None)]

    # 3. a new source with k new unique queries: exactly k x teachers x n generations
    extra = tmp_path / "extra.jsonl"
    _write_questions(extra, EXTRA + EASY[:2])  # two of them are duplicates of existing queries
    config["sources"].append({"name": "extra", "kind": "file", "path": str(extra), "category": "math",
                              "mapping": {"question": "question", "answer": "answer"}})
    project.write(config)
    defs = project.defs()
    requested, cursor = _tick(defs, instance, cursor, upto_mix=True)
    # a new partition is missing everywhere: one run takes it through ingest (deps requested together)
    assert requested == {"raw_queries": ["extra"], "clean_queries": ["extra"], "query_embeddings": ["extra"]}
    before = lake.version("verification_outcomes")
    r3 = materialize_all(defs, instance, pool=models, select=upto_mix, log=lambda *_: None)
    assert r3.partitions("raw_queries") == ["extra"] and r3.partitions("query_embeddings") == ["extra"]
    # verification appends the new responses' verdicts; no stored partition is rewritten
    commits = [c for c in lake.history("verification_outcomes") if c["version"] > before]
    assert commits and all(c["operationParameters"]["mode"] == "Append" for c in commits)
    assert r3.total("teacher_responses", "generated") == len(EXTRA) * 2 * N
    assert r3.total("query_embeddings", "embedded_new") == len(EXTRA)  # the two duplicates' texts are cached
    assert lake.read("teacher_responses").height == (len(EASY) + len(EXTRA)) * 2 * N

    # 4. one teacher's sampling changes: only that teacher regenerates; the other's files are untouched
    t2_files = _files(lake, "teacher_responses", "t2")
    config["teachers"][0]["sampling"]["temperature"] = 0.9
    project.write(config)
    defs = project.defs()
    requested, cursor = _tick(defs, instance, cursor, upto_mix=True)
    # the edit is observed in the same tick window as step 3's materializations of these partitions:
    # the state condition (sensors/automation.py) still requests them
    assert requested == {"teacher_responses": ["s00|t1", "s01|t1"]}
    r4 = materialize_all(defs, instance, pool=models, select=upto_mix, log=lambda *_: None)
    assert sorted(r4.partitions("teacher_responses")) == ["s00|t1", "s01|t1"]
    assert sorted(r4.partitions("verification_outcomes")) == ["s00|t1", "s01|t1"]
    assert r4.total("teacher_responses", "generated") == (len(EASY) + len(EXTRA)) * N
    assert _files(lake, "teacher_responses", "t2") == t2_files

    # 5. a teacher is added: only its partitions, then the fan-in aggregates and what follows them
    config["teachers"].insert(0, _teacher("t0", 1.2))
    project.write(config)
    defs = project.defs()
    requested, cursor = _tick(defs, instance, cursor, upto_mix=True)
    assert requested == {"teacher_responses": ["s00|t0", "s01|t0"], "verification_outcomes": ["s00|t0", "s01|t0"]}
    r5 = materialize_all(defs, instance, pool=models, select=upto_mix, log=lambda *_: None)
    assert sorted(r5.partitions("teacher_responses")) == ["s00|t0", "s01|t0"]
    assert sorted(r5.partitions("verification_outcomes")) == ["s00|t0", "s01|t0"]
    assert sorted(r5.partitions("difficulty_scores")) == ["s00", "s01"]
    assert r5.partitions("training_mix") == [None]
    assert r5.total("teacher_responses", "generated") == (len(EASY) + len(EXTRA)) * N
    rates = pl.read_delta(lake.uri("difficulty_scores")).columns
    assert any("t0" in c for c in rates)
