"""Verdict fidelity on a labelled corpus from real public data, and `am-distill check` end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from am_assets.verify.check import check_rows
from am_assets.verify.math_worker import final_answer
from benchmarks.verifier_corpus import DATA, build_corpus
from resources.config import VerificationConfig
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} (public data for the corpus) is absent")


@pytest.fixture(scope="module")
def verdicts():
    rows = build_corpus(n_math=60, n_gsm8k=60, seed=1)
    return rows, list(check_rows(rows, VerificationConfig(), sandbox_factory=lambda: None))


def test_math_false_pass_and_false_fail_rates_meet_the_targets(verdicts):
    rows, out = verdicts
    math = [(r, v) for r, v in zip(rows, out) if r["category"] == "math"]
    must_fail = [v for r, v in math if not r["expect_pass"]]
    must_pass = [v for r, v in math if r["expect_pass"]]
    false_pass = [(r["kind"], v) for r, v in math if v["passed"] and not r["expect_pass"]]
    false_fail = [(r["kind"], v) for r, v in math if not v["passed"] and r["expect_pass"]]
    assert len(must_fail) > 500 and len(must_pass) > 500
    assert len(false_pass) / len(must_fail) <= 0.005, false_pass[:5]
    assert len(false_fail) / len(must_pass) <= 0.02, false_fail[:5]
    # the fallback is recorded: statements and bare answers say where the answer came from
    froms = {v["details"].get("from") for r, v in math if r["kind"] in ("statement", "bare_answer")}
    assert froms == {"answer_statement", "answer_part"}


def test_no_truncated_response_passes_and_each_says_why(verdicts):
    rows, out = verdicts
    cut = [v for r, v in zip(rows, out) if r["kind"] == "truncated"]
    assert len(cut) > 300
    assert not any(v["passed"] for v in cut)
    assert all(v["status"] == "truncated" and v["truncated"] and v["details"]["reason"].startswith("truncated")
               for v in cut)


def test_multiple_choice_is_exact_on_well_formed_answers(verdicts):
    rows, out = verdicts
    mc = [(r, v) for r, v in zip(rows, out) if r["kind"].startswith("mc_")]
    assert len(mc) > 200 and {v["verifier"] for _, v in mc} == {"choice"}
    assert all(v["passed"] == r["expect_pass"] for r, v in mc), [
        (r["kind"], v["details"]) for r, v in mc if v["passed"] != r["expect_pass"]][:5]


def test_integer_references_verify_like_strings():
    rows = [{"category": "math", "question": "q", "reference_answer": 27, "response": "<answer>\\boxed{27.0}</answer>"},
            {"category": "math", "question": "q", "reference_answer": 0.5, "response": "<answer>\\boxed{\\frac12}</answer>"},
            {"category": "math", "question": "q", "reference_answer": 27, "response": "<answer>\\boxed{28}</answer>"}]
    assert [v["passed"] for v in check_rows(rows, VerificationConfig(), sandbox_factory=lambda: None)] == [
        True, True, False]


@pytest.mark.parametrize("part, answer, source", [
    ("The final answer is $\\frac{1}{2}$.", "\\frac{1}{2}", "answer_statement"),
    ("**Final Answer**: 42", "42", "answer_statement"),
    ("x = 3", "x = 3", "answer_part"),
    ("We need to compute $3 + 4 \\cdot 2$ first.", None, None),  # a restated expression is not an answer
    ("The answer is not 5.", None, None),
    ("Thus \\boxed{7} and so on", "7", "boxed"),
])
def test_final_answer_reads_only_explicit_answers(part, answer, source):
    assert final_answer(part) == (answer, source)
    assert final_answer(part, "none") == ((answer, source) if source == "boxed" else (None, None))


def test_check_command_prints_one_verdict_per_row_in_order(tmp_path):
    rows = [
        {"category": "math", "question": "2+2?", "reference_answer": 4, "response": "<think>2+2</think><answer>\\boxed{4}</answer>"},
        "not json",
        {"category": "math", "question": "2+2?", "reference_answer": "4",
         "response": "<think>2+2 is", "finish_reason": "length"},
        {"category": "science", "question": "Which?\n(A) x\n(B) y", "reference_answer": "B",
         "metadata": {"choices": {"options": ["x", "y"], "answer": "B", "shuffle_seed": None}},
         "response": "<think>hm</think><answer>The answer is (B).</answer>"},
        {"question": "no category", "response": "hi"},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    proc = subprocess.run([sys.executable, "-m", "am_distill.cli", "check", str(path)], cwd=PROJECT_DIR,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["row"] for o in out] == [1, 2, 3, 4, 5]
    assert out[0]["passed"] and out[0]["details"]["from"] == "boxed" and out[0]["verifier"] == "math-verify"
    assert "not valid JSON" in out[1]["error"] and "line 2" in out[1]["error"]
    assert out[2]["status"] == "truncated" and not out[2]["passed"]
    assert out[3]["verifier"] == "choice" and out[3]["passed"] and out[3]["verify_score"] == 5.0
    assert "category" in out[4]["error"]
