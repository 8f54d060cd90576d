"""The math verifier: Math-Verify in a pool of worker processes (math_pool.py), the answer from the
answer part's last \\boxed{} (else the configured fallback), and an optional judge second opinion on
answers Math-Verify rejected."""

from __future__ import annotations

import functools

from am_assets.core.progress import ProgressLog
from am_assets.verify.base import Verdict, Verifier, VerifyContext, no_reference
from am_assets.verify.math_pool import MathPool

CHUNK = 500  # items per call to the pool


@functools.cache
def math_version(second_opinion: bool, fallback: str = "answer_statement") -> str:
    from importlib.metadata import version

    # /3: answers only from the answer part (last \boxed{}, else the configured fallback); truncation
    return f"math-verify-{version('math-verify')}/3-{fallback}" + ("+judge" if second_opinion else "")


def math_pool(ctx: VerifyContext) -> MathPool:
    """The step's Math-Verify workers (started once per model pool; workers import sympy: ~1 s each)."""
    v = ctx.vcfg
    return ctx.models.get(("math_pool", v.math_workers, v.math_timeout_s),
                          lambda: MathPool(v.math_workers, v.math_timeout_s), close=MathPool.close)


def verify_math(rows: list[dict], ctx: VerifyContext) -> list[Verdict]:
    vcfg, judge, log = ctx.vcfg, ctx.judge, ctx.log
    out: list[Verdict | None] = [None] * len(rows)
    todo = []
    for i, r in enumerate(rows):
        if not r.get("reference_answer"):
            out[i] = no_reference("reference_answer")
        else:
            todo.append(i)
    pool = math_pool(ctx) if todo else None
    progress = ProgressLog(log)
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        # an untagged response mixes thinking and answer: a stated answer counts only in its last lines
        res = pool.verify([(rows[i]["reference_answer"], rows[i]["_answer"],
                            vcfg.answer_fallback if rows[i].get("_delimited") or vcfg.answer_fallback == "none"
                            else "answer_statement_tail") for i in chunk])
        for i, d in zip(chunk, res):
            out[i] = Verdict(d["score"], d["status"], d["details"])
        done = min(start + CHUNK, len(todo))
        progress(f"math: {done}/{len(todo)} verified", final=done == len(todo))
    if vcfg.math_judge_second_opinion and judge is not None:
        wrong = [i for i in todo if out[i].status == "ok" and out[i].score == 0 and rows[i]["_answer"]]
        opinions = judge.math_equivalent([(rows[i]["question"] or "", rows[i]["reference_answer"], rows[i]["_answer"])
                                          for i in wrong])
        for i, yes in zip(wrong, opinions):
            details = dict(out[i].details, judge_second_opinion=yes)
            out[i] = Verdict(1.0 if yes else 0.0, "ok", details)
        log(f"math: judge second opinion on {len(wrong)} answers Math-Verify rejected")
    return out  # type: ignore[return-value]


VERIFIER = Verifier(
    key="math", name="math-verify", applies=lambda row: row.get("category") == "math", verify=verify_math,
    version=lambda ctx: math_version(ctx.vcfg.math_judge_second_opinion, ctx.vcfg.answer_fallback))
