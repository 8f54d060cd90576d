"""The judge verifiers: science (0-5 against the reference) and other (coherence + correctness +
helpfulness), through `Judge` (judging.py). Their version is the judge's (model, settings, prompts)."""

from __future__ import annotations

from am_assets.verify.base import Verdict, Verifier, VerifyContext, no_reference


def _no_judge(rows: list[dict], ctx: VerifyContext) -> list[Verdict] | None:
    if ctx.judge is None:
        return [Verdict(0.0, "verifier_error", {"error": "no judge resource"})] * len(rows)
    return None


def verify_science(rows: list[dict], ctx: VerifyContext) -> list[Verdict]:
    if (failed := _no_judge(rows, ctx)) is not None:
        return failed
    out: list[Verdict | None] = [None if r.get("reference_answer") else no_reference("reference_answer") for r in rows]
    idx = [i for i, v in enumerate(out) if v is None]
    for i, v in zip(idx, ctx.judge.rate_science([(rows[i].get("question") or "", rows[i]["reference_answer"],
                                                  rows[i]["_answer"]) for i in idx])):
        out[i] = v
    return out  # type: ignore[return-value]


def verify_other(rows: list[dict], ctx: VerifyContext) -> list[Verdict]:
    if (failed := _no_judge(rows, ctx)) is not None:
        return failed
    return ctx.judge.rate_other([(r.get("question") or "", r["_answer"]) for r in rows])


SCIENCE = Verifier(key="science", name="judge-science", applies=lambda row: row.get("category") == "science",
                   version=lambda ctx: ctx.judge_version, verify=verify_science)
# the fallback: every row no earlier verifier took
OTHER = Verifier(key="other", name="judge-other", applies=lambda row: True,
                 version=lambda ctx: ctx.judge_version, verify=verify_other)
