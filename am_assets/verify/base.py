"""What every verifier returns, the statuses, and text extraction shared by the verifiers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from am_assets.core.responses import parse_response, truncation

# `truncated`: the response was cut off (finish_reason length, an unclosed thinking part, an import with no
# answer part): a verdict (score 0, never a pass), unlike the verifier failures timeout / verifier_error.
STATUSES = ("ok", "truncated", "timeout", "verifier_error", "no_reference", "unparseable")


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


def answer_part(answer: str | None, response: str | None) -> str:
    """The answer part of a response (am_assets/core/responses.py); the `answer` column when there is no
    response text. Empty when there is none (a cut-off thought has no answer part)."""
    if response:
        return parse_response(response).answer or ""
    return (answer or "").strip()


def truncated_verdict(response: str | None, finish_reason: str | None, parsed=None) -> Verdict | None:
    """A `truncated` verdict (score 0) for a cut-off response, else None: the response gets verified."""
    why = truncation(response, finish_reason, parsed)
    return None if why is None else Verdict(0.0, "truncated", {"reason": f"truncated: {why}"})


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


@dataclass
class VerifyContext:
    """What a verifier may use besides its rows: the `verification` settings, the sandbox factory, the
    judge (or None), the step's model pool (math workers, perplexity models) and a log function."""

    vcfg: object
    sandbox_factory: Callable | None = None
    judge: object | None = None
    judge_version: str = "judge/none"
    models: object | None = None  # resources.pool.ModelPool
    log: Callable[[str], None] = lambda m: None


@dataclass(frozen=True)
class Verifier:
    """One entry of the verifier registry (am_assets/verify/registry.py).

    `applies(row)`: does this verifier take the row (the first in registry order that does, wins);
    `version(ctx)`: recorded on each row and part of the verdict cache key, so a new version re-verifies;
    `verify(rows, ctx)`: one Verdict per row, in order. Rows carry the query columns plus `_answer`
    (the answer part) and `_delimited` (the response had an explicit answer part)."""

    key: str  # the group key (also what `choose_verifier` returns)
    name: str  # the `verifier` column
    applies: Callable[[dict], bool]
    version: Callable[[VerifyContext], str]
    verify: Callable[[list[dict], VerifyContext], list[Verdict]]
