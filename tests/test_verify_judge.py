"""The judge on the real default model (SmolLM2-135M through vLLM on CPU): science 0-5 and other
(coherence + correctness + helpfulness) / 12 verdicts, or `unparseable` when its reply cannot be read."""

from __future__ import annotations

import json

import polars as pl
import pytest

from am_assets.verify.judging import Judge
from am_assets.verify.logic import verify_partition
from resources.config import load_config
from resources.engines import EnginesResource
from resources.judge import JudgeResource
from tests.conftest import BASE_ENGINE


@pytest.fixture(scope="module")
def judge(tmp_path_factory, vllm_pool):
    cfg = tmp_path_factory.mktemp("judge") / "pipeline.yaml"
    cfg.write_text(json.dumps({"teachers": [{"name": "small", "kind": "vllm", **BASE_ENGINE}]}))
    return Judge(JudgeResource(max_tokens=32), load_config(cfg), EnginesResource.sharing(vllm_pool))


def _check(v, top):
    assert v.status in ("ok", "unparseable"), v
    assert "judge_reply" in v.details
    if v.status == "ok":
        assert 0 <= v.score <= top
    else:
        assert v.score == 0.0 and v.details["reason"]


def test_judge_rates_science_and_other_with_the_default_model(judge):
    science = judge.rate_science([
        ("What gas do plants absorb for photosynthesis?", "Carbon dioxide (CO2)", "Plants absorb carbon dioxide."),
        ("What is the boiling point of water at sea level in Celsius?", "100", "It boils at 50 degrees."),
    ])
    other = judge.rate_other([("Write a haiku about rain.", "Soft rain on the roof\nwhispers to the sleeping town\npuddles hold the sky")])
    for v in science:
        _check(v, 5)
    for v in other:
        _check(v, 1)
    assert judge.version().startswith("judge/")


def test_science_and_other_rows_through_verify_partition(judge):
    from resources.config import VerificationConfig

    queries = pl.DataFrame([
        {"query_id": "qs", "category": "science", "question": "Why is the sky blue?",
         "reference_answer": "Rayleigh scattering of sunlight", "metadata": "{}"},
        {"query_id": "qs2", "category": "science", "question": "What is H2O?", "reference_answer": None,
         "metadata": "{}"},
        {"query_id": "qo", "category": "other", "question": "Say hello politely.", "reference_answer": None,
         "metadata": "{}"},
    ])
    responses = pl.DataFrame([
        {"response_id": rid, "query_id": qid, "response": f"<think>t</think><answer>{a}</answer>", "think": "t",
         "answer": a, "truncated": False, "finish_reason": "stop", "status": "ok", "error": None}
        for rid, qid, a in [("a", "qs", "Because of Rayleigh scattering."), ("b", "qs2", "Water."),
                            ("c", "qo", "Hello! How can I help you today?")]])
    out, stats = verify_partition(responses, queries, pl.DataFrame(), VerificationConfig(), sandbox_factory=None,
                                  judge=judge, judge_version=judge.version())
    rows = {r["response_id"]: r for r in out.to_dicts()}
    assert rows["a"]["verifier"] == "judge-science" and rows["a"]["status"] in ("ok", "unparseable")
    assert rows["b"]["status"] == "no_reference"
    assert rows["c"]["verifier"] == "judge-other" and rows["c"]["status"] in ("ok", "unparseable")
    # 4.99 on a 0-5 scale and 0.7 on 0-1: passing needs a (near) perfect rating
    for r in rows.values():
        assert r["passed"] == (r["status"] == "ok" and r["verify_score"] > {"science": 4.99, "other": 0.7}[r["category"]])


def test_math_second_opinion_asks_the_judge_only_when_math_verify_says_wrong(judge):
    from resources.config import VerificationConfig

    vcfg = VerificationConfig(math_judge_second_opinion=True, math_workers=1)
    queries = pl.DataFrame([{"query_id": "q", "category": "math", "question": "What is half of one?",
                             "reference_answer": "\\frac{1}{2}", "metadata": "{}"}])
    responses = pl.DataFrame([
        {"response_id": rid, "query_id": "q", "response": None, "think": None, "answer": a, "status": "ok",
         "truncated": False} for rid, a in [("right", "\\boxed{0.5}"), ("wrong", "It is one half, \\boxed{2}.")]])
    out, _ = verify_partition(responses, queries, pl.DataFrame(), vcfg, sandbox_factory=None, judge=judge,
                              judge_version=judge.version())
    rows = {r["response_id"]: r for r in out.to_dicts()}
    assert rows["right"]["verify_score"] == 1.0 and "judge_second_opinion" not in json.loads(rows["right"]["details"])
    opinion = json.loads(rows["wrong"]["details"])["judge_second_opinion"]
    assert opinion in (True, False, None)
    assert rows["wrong"]["verify_score"] == (1.0 if opinion else 0.0)
    assert all(r["verifier_version"].endswith("+judge") for r in rows.values())
