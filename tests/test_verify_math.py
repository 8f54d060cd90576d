"""Math verification on real traces: Sky-T1 MATH-500 verdicts, GSM8K references, and a hanging call."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from am_assets.ingest.adapters import extract_answer
from am_assets.verify.base import answer_part
from am_assets.verify.math_pool import MathPool
from am_assets.verify.math_worker import _parse_gold, last_boxed
from tests.conftest import shared

# 2^(2^(2^(2^(2^2)))) makes sympy try to evaluate a number with ~10^19728 digits: a real hang
HANGING = ("2^{2^{2^{2^{2^{2}}}}}", "The answer is \\boxed{3}.")


@pytest.fixture(scope="module")
def pool():
    p = MathPool(workers=2, timeout_s=5.0)
    yield p
    p.close()


def _skyt1_rows():
    rows = []
    with gzip.open(shared("reasoning_traces/skyt1_27b_math500.jsonl.gz"), "rt") as fh:
        for line in fh:
            r = json.loads(line)
            code = r["code"] if isinstance(r["code"], list) else json.loads(r["code"])
            score = r["score"] if isinstance(r["score"], list) else json.loads(r["score"].lower())
            rows.append({"gt": r["gt"], "response": code[0], "score": bool(score[0])})
    return rows


def test_skyt1_math500_verdicts_agree_with_the_files_scores(pool):
    rows = _skyt1_rows()
    assert len(rows) == 500
    items = [(r["gt"], answer_part(None, r["response"])) for r in rows]
    verdicts = pool.verify(items)
    assert all(v["status"] in ("ok", "unparseable") for v in verdicts)
    # Responses with an answer part (<|begin_of_solution|>): we verify its last \boxed{}, as the file does.
    answered = [(r, v) for r, v, (_, a) in zip(rows, verdicts, items) if a]
    agree = sum((v["score"] == 1.0) == r["score"] for r, v in answered)
    assert len(answered) >= 190
    assert agree / len(answered) >= 0.95, f"{agree}/{len(answered)} agree"
    # Truncated traces without an answer part get no credit here (the file's grader scanned the unfinished
    # thought for a number and credited 122 of them): no answer part, no answer.
    unanswered = [v for v, (_, a) in zip(verdicts, items) if not a]
    assert unanswered and all(v["score"] == 0.0 for v in unanswered)


def test_gsm8k_hash_references_parse_and_verify(pool):
    lines = shared("gsm8k/test.jsonl").read_text().splitlines()[:300]
    refs = [extract_answer(json.loads(line)["answer"], "gsm8k", "answer") for line in lines]
    assert all(refs)
    assert all(_parse_gold(ref) for ref in refs), [r for r in refs if not _parse_gold(r)]
    right = pool.verify([(ref, f"So the total is \\boxed{{{ref}}}.") for ref in refs])
    wrong = pool.verify([(ref, f"So the total is \\boxed{{{ref}1}}.") for ref in refs])
    assert [v["score"] for v in right] == [1.0] * len(refs)
    assert [v["score"] for v in wrong] == [0.0] * len(refs)


def test_latex_answers_go_through_math_verify(pool):
    items = [("\\frac{1}{2}", "thus \\boxed{0.5}"), ("(3,\\frac{\\pi}{2})", "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}"),
             ("x^2+2x+1", "\\boxed{(x+1)^2}"), ("\\sqrt{2}", "\\boxed{1.5}"), ("5", "I do not know.")]
    scores = [v["score"] for v in pool.verify(items)]
    assert scores == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert last_boxed("a \\boxed{\\frac{a}{b}} then \\boxed{x^{2}}") == "x^{2}"


def test_a_hanging_math_verify_call_times_out_and_the_batch_goes_on():
    pool = MathPool(workers=2, timeout_s=2.0)
    try:
        items = [("1", "\\boxed{1}"), HANGING, ("\\frac{2}{4}", "\\boxed{\\frac{1}{2}}")] + [
            (str(i), f"\\boxed{{{i}}}") for i in range(20)]
        t0 = time.monotonic()
        verdicts = pool.verify(items)
        elapsed = time.monotonic() - t0
        assert verdicts[1]["status"] == "timeout"
        assert "2s" in verdicts[1]["details"]["error"]
        assert [v["status"] for i, v in enumerate(verdicts) if i != 1] == ["ok"] * (len(items) - 1)
        assert [v["score"] for i, v in enumerate(verdicts) if i != 1] == [1.0] * (len(items) - 1)
        assert pool.restarts == 1 and elapsed < 30
        # the replacement worker serves the next batch
        assert pool.verify([("7", "\\boxed{7}")])[0]["score"] == 1.0
    finally:
        pool.close()
