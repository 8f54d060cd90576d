"""LLM-judge prompts, the parsers of their replies (pure) and `Judge`, which sends them through the
judge resource (resources/judge.py) on the step's engines.

Science: similarity to the reference answer on 0-5 (the paper's Qwen2.5-7B step). Other: coherence,
correctness and helpfulness on 0-4 each, score = sum / 12 (the paper used a reward model for this).
Math second opinion: a yes/no equivalence check after Math-Verify said "wrong".
A reply we cannot read is status `unparseable`, never a score.
"""

from __future__ import annotations

import re

from am_assets.verify.base import Verdict

PROMPT_VERSION = "1"

SCIENCE_PROMPT = """You grade an answer to a science question against the reference answer.
Rate how well the answer's final result agrees with the reference on a scale from 0 (wrong or missing)
to 5 (fully equivalent). Reply with one line: "Score: <number from 0 to 5>".

Question:
{question}

Reference answer:
{reference}

Answer to grade:
{answer}
"""

OTHER_PROMPT = """You grade an assistant's reply to a user request.
Rate three things, each an integer from 0 (very poor) to 4 (excellent): coherence, correctness,
helpfulness. Reply with exactly three lines:
Coherence: <0-4>
Correctness: <0-4>
Helpfulness: <0-4>

Request:
{question}

Reply to grade:
{answer}
"""

MATH_PROMPT = """Is the final answer of the solution mathematically equivalent to the reference answer?
Reply with one line: "Verdict: YES" or "Verdict: NO".

Problem:
{question}

Reference answer:
{reference}

Solution:
{answer}
"""

_MAX_CHARS = 6000  # keep prompts inside a small judge's context


def _clip(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= _MAX_CHARS else "...\n" + text[-_MAX_CHARS:]


def science_prompt(question: str, reference: str, answer: str) -> str:
    return SCIENCE_PROMPT.format(question=_clip(question), reference=_clip(reference), answer=_clip(answer))


def other_prompt(question: str, answer: str) -> str:
    return OTHER_PROMPT.format(question=_clip(question), answer=_clip(answer))


def math_prompt(question: str, reference: str, answer: str) -> str:
    return MATH_PROMPT.format(question=_clip(question), reference=_clip(reference), answer=_clip(answer))


_NUM = r"(\d+(?:\.\d+)?)"


def parse_science(reply: str) -> Verdict:
    m = re.search(r"score\s*[:=]\s*" + _NUM, reply or "", re.I)
    if not m:
        return Verdict(0.0, "unparseable", {"judge_reply": (reply or "")[:500], "reason": "no 'Score: x' line"})
    score = float(m.group(1))
    if not 0 <= score <= 5:
        return Verdict(0.0, "unparseable", {"judge_reply": reply[:500], "reason": f"score {score} outside 0-5"})
    return Verdict(score, "ok", {"judge_reply": reply[:500], "scale": "0-5"})


def parse_other(reply: str) -> Verdict:
    parts = {}
    for name in ("coherence", "correctness", "helpfulness"):
        m = re.search(name + r"\s*[:=]\s*" + _NUM, reply or "", re.I)
        if not m or not 0 <= float(m.group(1)) <= 4:
            return Verdict(0.0, "unparseable", {"judge_reply": (reply or "")[:500], "reason": f"no valid {name} 0-4"})
        parts[name] = float(m.group(1))
    return Verdict(sum(parts.values()) / 12, "ok", {"judge_reply": reply[:500], **parts})


def parse_math(reply: str) -> bool | None:
    m = re.search(r"verdict\s*[:=]\s*(yes|no)", reply or "", re.I)
    return None if not m else m.group(1).lower() == "yes"


class Judge:
    """The judge as verify uses it: the resource (which teacher, reply length) over the step's engines,
    with this module's prompts and parsers. An engine failure is `verifier_error`, never a score."""

    def __init__(self, resource, cfg, engines):
        self.resource, self.cfg, self.engines = resource, cfg, engines

    def version(self) -> str:
        return self.resource.version(self.cfg, PROMPT_VERSION)

    def complete(self, prompts: list[str]) -> list:
        return self.resource.complete(self.cfg, self.engines, prompts)

    def _rate(self, prompts: list[str], parse) -> list[Verdict]:
        if not prompts:
            return []
        try:
            replies = self.complete(prompts)
        except Exception as e:  # noqa: BLE001 - the judge failed: no verdict
            err = Verdict(0.0, "verifier_error", {"error": f"judge: {type(e).__name__}: {e}"[:500]})
            return [err] * len(prompts)
        out = []
        for c in replies:
            if c is None or c.finish_reason == "error":
                out.append(Verdict(0.0, "verifier_error", {"error": f"judge: {getattr(c, 'error', None) or 'no reply'}"}))
            else:
                out.append(parse(c.text))
        return out

    def rate_science(self, items: list[tuple[str, str, str]]) -> list[Verdict]:
        """[(question, reference, answer)] -> 0-5 Verdicts."""
        return self._rate([science_prompt(q, r, a) for q, r, a in items], parse_science)

    def rate_other(self, items: list[tuple[str, str]]) -> list[Verdict]:
        """[(question, answer)] -> Verdicts of (coherence + correctness + helpfulness) / 12."""
        return self._rate([other_prompt(q, a) for q, a in items], parse_other)

    def math_equivalent(self, items: list[tuple[str, str, str]]) -> list[bool | None]:
        """[(question, reference, answer)] -> True/False, None when the reply is unreadable or the judge failed."""
        if not items:
            return []
        try:
            replies = self.complete([math_prompt(q, r, a) for q, r, a in items])
        except Exception:  # noqa: BLE001 - a failed second opinion keeps Math-Verify's verdict
            return [None] * len(items)
        return [None if c is None or c.finish_reason == "error" else parse_math(c.text) for c in replies]
