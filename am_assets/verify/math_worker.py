"""Math-Verify worker process: JSON lines in ({"i", "gold", "pred"}), JSON lines out ({"i", "score", "status",
"details"}). Run as a script by math_pool.py (a plain script, so it starts without importing the
pipeline's packages). Math-Verify's own signal-based timeouts are disabled here: the pool enforces a
per-item timeout from outside by killing and replacing this process.
"""

import functools
import json
import os
import re
import sys
from decimal import Decimal, InvalidOperation

# what an answer part without a \boxed{} gives; answer_statement_tail is for untagged responses
FALLBACKS = ("none", "answer_statement", "answer_statement_tail")
TAIL_LINES = 3  # an untagged response: a stated answer counts only in its last lines (its conclusion)


def _load_boxed():
    # a plain script (python -I) cannot import the packages: load the one implementation by path
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "core", "boxed.py")
    spec = importlib.util.spec_from_file_location("_am_boxed", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.last_boxed


last_boxed = _load_boxed()


# "The final answer is X", "Answer: X", "answer = X": the last one in the answer part.
_STATEMENT = re.compile(r"(?:final\s+answer|the\s+answer|\banswer)\**\s*(?:is|:|=|would\s+be|will\s+be|should\s+be)\s*:?\s*",
                        re.I)
# where a stated answer ends: a line break, a sentence end, or a clause that explains it
_STATEMENT_END = re.compile(r"\n|\.\s|\.$|;|\s(?:because|since|as|which|where|so|for)\s", re.I)
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")  # a word, not a LaTeX command


def final_answer(part: str, fallback: str = "answer_statement") -> tuple[str | None, str | None]:
    """(answer text, where it came from) read from an answer part, or (None, None).

    The last \\boxed{} first (the papers' rule). With `fallback="answer_statement"`, an answer part that
    is itself one short expression (`<answer>42</answer>`) or ends in an explicit statement ("the final
    answer is 42") gives that; any other prose gives nothing: an expression merely restated from the
    question is not an answer. `"answer_statement_tail"` (untagged responses, which mix thinking and
    answer) reads a statement only in the last TAIL_LINES non-empty lines.
    """
    boxed = last_boxed(part or "")
    if boxed:
        return boxed, "boxed"
    if fallback not in FALLBACKS[1:] or not part:  # "none" (or an unknown mode): the box only
        return None, None
    bare = part.strip().strip("$").rstrip(".").strip()
    # one token ("Evelyn", "x=3") or a formula without words ("x = 3", "(1, 2)"): the part is the answer
    if bare and len(bare) <= 80 and "\n" not in bare and (" " not in bare or not _WORD.search(bare)):
        return bare, "answer_part"
    if fallback == "answer_statement_tail":
        part = "\n".join([ln for ln in part.splitlines() if ln.strip()][-TAIL_LINES:])
    found = list(_STATEMENT.finditer(part))
    if found:
        tail = part[found[-1].end():]
        end = _STATEMENT_END.search(tail)
        stated = (tail[:end.start()] if end else tail).strip().strip("*").strip().strip("$").rstrip(".").strip()
        if stated and len(stated) <= 200 and not stated.lower().startswith("not "):
            return stated, "answer_statement"
    return None, None


def _short(x) -> str:
    s = str(x)
    return s if len(s) <= 200 else s[:200] + "..."


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str):
    from math_verify import parse

    text = gold if ("$" in gold or "\\boxed" in gold) else f"${gold}$"
    parsed = parse(text, parsing_timeout=None)
    if not parsed and text != gold:
        parsed = parse(gold, parsing_timeout=None)
    return parsed


_NUMBER = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")


def _number(text: str) -> Decimal | None:
    text = text.strip().strip("$").strip()
    if not _NUMBER.match(text):
        return None
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def fast_check(gold: str, answer: str | None) -> dict | None:
    """Plain numbers (most GSM8K / reasoning-gym answers) and identical strings need no LaTeX parser.
    Same verdict as Math-Verify there (it rounds floats to 6 places too); None = ask Math-Verify."""
    if answer is None:
        return None
    g, a = _number(gold), _number(answer)
    details = {"extracted": answer[:200], "reference": gold[:200], "fast_path": True}
    if g is not None and a is not None:
        return {"score": 1.0 if g == a or round(g, 6) == round(a, 6) else 0.0, "status": "ok", "details": details}
    if " ".join(gold.split()) == " ".join(answer.split()) and gold.strip():
        return {"score": 1.0, "status": "ok", "details": details}
    return None


def check(gold: str, pred: str, fallback: str = "answer_statement") -> dict:
    """Score one answer part against a reference answer; pred is the answer part, never the thinking."""
    from math_verify import parse, verify

    answer, source = final_answer(pred, fallback)
    if answer is None:
        return {"score": 0.0, "status": "ok", "details": {
            "reason": "no \\boxed{} answer in the answer part" + (" and no stated final answer" if fallback != "none"
                                                                  else ""), "reference": _short(gold)}}
    fast = fast_check(gold, answer)
    if fast is not None:
        fast["details"]["from"] = source
        return fast
    g = _parse_gold(gold)
    if not g:
        return {"score": 0.0, "status": "unparseable",
                "details": {"reason": "reference answer not parseable by Math-Verify", "reference": _short(gold)}}
    p = parse(f"\\boxed{{{answer}}}", parsing_timeout=None)
    details = {"extracted": _short(p[-1]) if p else _short(answer), "from": source, "reference": _short(g[-1])}
    if not p:
        details["reason"] = "the final answer is not parseable"
        return {"score": 0.0, "status": "ok", "details": details}
    return {"score": 1.0 if verify(g, p, timeout_seconds=None) else 0.0, "status": "ok", "details": details}


def main() -> None:
    import logging

    logging.disable(logging.WARNING)  # "timeout is disabled" warnings: we know, the pool times out
    import math_verify  # noqa: F401 - import before saying ready, so start-up is not billed to an item

    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        item = json.loads(line)
        try:
            res = check(item["gold"], item["pred"], item.get("fallback", "answer_statement"))
        except Exception as e:  # noqa: BLE001 - a verifier failure is a status, not a verdict
            res = {"score": 0.0, "status": "verifier_error", "details": {"error": f"{type(e).__name__}: {e}"[:300]}}
        res["i"] = item["i"]
        out.write(json.dumps(res) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
