"""What every verifier returns, the statuses, and text extraction shared by the verifiers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

STATUSES = ("ok", "timeout", "verifier_error", "no_reference", "unparseable")


@dataclass(frozen=True)
class Verdict:
    """`score` is meaningful only when `status == "ok"`; any other status says why there is no verdict."""

    score: float
    status: str
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown verification status {self.status!r} (known: {STATUSES})")


def no_reference(what: str) -> Verdict:
    return Verdict(0.0, "no_reference", {"reason": f"the query has no {what}"})


_THINK_END = re.compile(r"</think>|<\|end_of_thought\|>", re.I)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S | re.I)
_SOLUTION = re.compile(r"<\|begin_of_solution\|>(.*?)(?:<\|end_of_solution\|>|$)", re.S)


def answer_part(answer: str | None, response: str | None) -> str:
    """The answer part: the parsed `answer` column when present, else the response after the think part
    (<answer>...</answer>, <|begin_of_solution|>... or text after </think>). Empty when there is none."""
    if answer and answer.strip():
        return answer
    text = response or ""
    for pattern in (_ANSWER, _SOLUTION):
        m = pattern.search(text)
        if m:
            return m.group(1).strip()
    parts = _THINK_END.split(text)
    return parts[-1].strip() if len(parts) > 1 else ""


_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.S)


def last_code_block(text: str) -> tuple[str | None, str | None]:
    """(code, language) of the last ```python block, else of the last fenced block of any language."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text or "")]
    if not blocks:
        return None, None
    for lang, code in reversed(blocks):
        if lang in ("python", "py", "python3"):
            return code, lang
    lang, code = blocks[-1]
    return code, lang or None
