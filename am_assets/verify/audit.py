"""Verifier audit: re-check a seeded sample of verdicts per (source, category, verifier) with a second
method that shares no code with the primary path, and estimate how often the primary verdict is wrong.

Second methods (the primary's verdict is `passed`; rows with status `ok` or `truncated` are verdicts):
  math-verify      plain Math-Verify, as open-r1 calls it: `parse` of the whole answer part with the
                   default extraction config (not our last-`\\boxed{}`/fast-number path), gold parsed
                   as `\\boxed{reference}`, then `verify`. Truncated or answer-less responses fail.
  judge-science    the same plain Math-Verify check when the reference is a number or short LaTeX;
                   free-form references have no independent checker (said per row)
  choice           a separate, simpler reader: the last option letter stated in the answer part
                   (`\\boxed{X}`, "answer is X", "Answer: (X)", a line that is only a letter), else the one
                   option whose text the last line contains; compared with metadata.choices.answer
  code-sandbox     a re-run of the tests through the sandbox: this measures reproducibility (flaky
                   tests, load-dependent timeouts), not bugs shared by both runs
  others           none: reported as such, never counted as agreement

Rates (the second method taken as the reference where the two disagree):
  false_pass = primary passes the second method rejects / primary passes compared
  false_fail = primary fails the second method accepts / primary fails compared
Errors both methods make alike are invisible, and a disagreement may be the second method's error.
"""

from __future__ import annotations

import json
import math
import re
import threading
from typing import Callable

import polars as pl

GROUP_KEYS = ["source", "category", "verifier"]
VERDICT_STATUSES = ("ok", "truncated")  # a truncated response is a verdict too: a fail
Z95 = 1.959964
SAMPLE_COLUMNS = ["response_id", "query_id", "teacher", "shard", "category", "verifier", "status", "passed"]
AUDIT_SCHEMA: dict[str, pl.DataType] = {
    "response_id": pl.String, "query_id": pl.String, "teacher": pl.String, "shard": pl.String,
    "source": pl.String, "category": pl.String, "verifier": pl.String, "status": pl.String,
    "primary_passed": pl.Boolean, "second_passed": pl.Boolean, "second_method": pl.String,
    "second_note": pl.String, "agree": pl.Boolean,
}
NO_SECOND = {
    "ifeval": "no second method: the IFEval validators are the only implementation",
    "reasoning-gym": "no second method: the generator's score_answer defines correct",
    "judge-other": "no second method: open-ended answers have no reference to check against",
    "none": "no verifier ran (failed generation or missing query row)",
}


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval for k successes in n trials (None, None when n is 0)."""
    if n == 0:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def sample_verdicts(outcomes: pl.LazyFrame | pl.DataFrame, per_group: int, seed: int) -> pl.DataFrame:
    """Up to `per_group` rows per (source, category, verifier), chosen by a seeded hash of response_id:
    the same seed picks the same rows, and new rows do not reshuffle the old choice."""
    lf = outcomes.lazy().with_columns(pl.col("response_id").hash(seed).alias("_h"))
    rank = pl.col("_h").rank("ordinal").over([pl.col(k).fill_null("") for k in GROUP_KEYS])
    return lf.filter(rank <= per_group).drop("_h").collect().sort(*GROUP_KEYS, "response_id", nulls_last=True)


# --- the answer part, read independently of am_assets/verify/base.py -----------------------------------

_CLOSED_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_CLOSED_SOLUTION = re.compile(r"<\|begin_of_solution\|>(.*?)<\|end_of_solution\|>", re.S)
_THINK_END = re.compile(r"</think>|<\|end_of_thought\|>", re.I)
_OPENERS = re.compile(r"<think>|<answer>|<\|begin_of_thought\|>|<\|begin_of_solution\|>", re.I)


def strict_answer_part(answer: str | None, response: str | None) -> str:
    """A *closed* answer/solution block, else the text after the last end of thinking, else (no tags at
    all) the whole response; an opened section that never closes gives none. The `answer` column is
    read only when there is no response text."""
    text = response or ""
    if not text.strip():
        return (answer or "").strip()
    for pattern in (_CLOSED_ANSWER, _CLOSED_SOLUTION):
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    parts = _THINK_END.split(text)
    if len(parts) > 1:
        return "" if _OPENERS.search(parts[-1]) else parts[-1].strip()
    return "" if _OPENERS.search(text) else text.strip()


def _plain_math_verify(reference: str, text: str) -> tuple[bool | None, str]:
    """open-r1 style Math-Verify with its defaults; None when the reference does not parse."""
    from math_verify import parse, verify

    # Math-Verify's timeouts use SIGALRM, which works only in the main thread
    kw = {} if threading.current_thread() is threading.main_thread() else {"parsing_timeout": None}
    gold = parse(f"\\boxed{{{reference}}}", **kw) or parse(reference, **kw)
    if not gold:
        return None, "reference not parseable"
    pred = parse(text, **kw)
    if not pred:
        return False, "no answer parsed"
    vkw = {} if kw == {} else {"timeout_seconds": None}
    ok = verify(gold, pred, **vkw)
    return bool(ok), f"extracted {str(pred[-1])[:80]}"


def math_second(reference: str | None, answer: str | None, response: str | None,
                truncated: bool | None) -> tuple[bool | None, str]:
    if not reference:
        return None, "no reference"
    if truncated:
        return False, "truncated"
    part = strict_answer_part(answer, response)
    if not part:
        return False, "no answer part"
    try:
        return _plain_math_verify(reference, part)
    except Exception as e:  # noqa: BLE001 - a failed re-check is no opinion, not a verdict
        return None, f"second method failed: {type(e).__name__}"[:120]


_MATHY = re.compile(r"^\s*\$?[-+]?[\d.,/\\{}^()a-z\s]*\$?\s*$", re.I)


def science_second(reference: str | None, answer: str | None, response: str | None,
                   truncated: bool | None) -> tuple[bool | None, str]:
    ref = (reference or "").strip()
    if not ref or not re.search(r"\d", ref) or len(ref) > 60 or not _MATHY.match(ref):
        return None, "no second method: free-form reference"
    return math_second(ref, answer, response, truncated)


_LETTER_RE = re.compile(r"\\boxed\{\s*(?:\\text\{|\\mathrm\{)?\s*\(?([A-Za-z])\)?[^A-Za-z]"
                        r"|[Aa]nswer\s*(?:is|:|=)?\s*(?:option\s*)?\**\s*\(?([A-Z])\)?(?![A-Za-z])"
                        r"|^\W*\(?([A-Z])\)?\W*$", re.M)


def _choices(metadata) -> dict | None:
    try:
        ch = (json.loads(metadata) if isinstance(metadata, str) else metadata or {}).get("choices")
    except (ValueError, AttributeError):
        return None
    return ch if isinstance(ch, dict) and ch.get("options") and ch.get("answer") else None


def choice_second(metadata, answer: str | None, response: str | None,
                  truncated: bool | None) -> tuple[bool | None, str]:
    ch = _choices(metadata)
    if ch is None:
        return None, "no metadata.choices"
    if truncated:
        return False, "truncated"
    part = strict_answer_part(answer, response)
    letters = [next(g for g in m.groups() if g) for m in _LETTER_RE.finditer(part)]
    letters = [x.upper() for x in letters if x.upper() < chr(ord("A") + len(ch["options"]))]
    if not letters:  # no letter: the one option whose text the last line names
        last = (part.strip().splitlines() or [""])[-1].lower()
        named = [i for i, o in enumerate(ch["options"]) if str(o).strip().lower() and str(o).strip().lower() in last]
        letters = [chr(ord("A") + named[0])] if len(named) == 1 else []
    if not letters:
        return False, "no option letter"
    return letters[-1] == str(ch["answer"]).strip().upper(), f"extracted {letters[-1]}"


CodeRerun = Callable[[list[dict]], list[bool | None]]


def second_opinions(rows: pl.DataFrame, *, code_rerun: CodeRerun | None = None) -> pl.DataFrame:
    """`rows` (sampled outcomes joined with their response and query) -> AUDIT_SCHEMA rows."""
    recs = rows.to_dicts()
    out: list[tuple[bool | None, str, str]] = []  # (second_passed, second_note, second_method)
    code_idx = []
    for i, r in enumerate(recs):
        cut = bool(r.get("truncated")) or r.get("finish_reason") == "length"
        verifier = r.get("verifier") or "none"
        args = (r.get("reference_answer"), r.get("answer"), r.get("response"), cut)
        if r.get("status") not in VERDICT_STATUSES:
            out.append((None, f"no primary verdict (status {r.get('status')})", "none"))
        elif verifier.startswith("math-verify"):
            out.append((*math_second(*args), "plain-math-verify"))
        elif verifier == "choice":
            out.append((*choice_second(r.get("metadata"), *args[1:]), "last-letter"))
        elif verifier == "judge-science":
            out.append((*science_second(*args), "plain-math-verify"))
        elif verifier == "code-sandbox":
            code_idx.append(i)
            out.append((None, "no sandbox: re-run skipped", "sandbox-rerun"))
        else:
            out.append((None, NO_SECOND.get(verifier, f"no second method for verifier {verifier}"), "none"))
    if code_idx and code_rerun is not None:
        for i, ok in zip(code_idx, code_rerun([recs[i] for i in code_idx])):
            out[i] = (ok, "re-run gave no verdict" if ok is None else "re-run", "sandbox-rerun")
    frame = pl.DataFrame({
        **{c: [r.get(c) for r in recs] for c in ("response_id", "query_id", "teacher", "shard", "source",
                                                "category", "verifier", "status")},
        "primary_passed": [bool(r.get("passed")) for r in recs],
        "second_passed": [o[0] for o in out], "second_note": [o[1][:200] for o in out],
        "second_method": [o[2] for o in out],
    }, schema_overrides={"second_passed": pl.Boolean})
    frame = frame.with_columns(
        pl.when(pl.col("second_passed").is_not_null())
        .then(pl.col("primary_passed") == pl.col("second_passed")).otherwise(None).alias("agree"))
    return frame.select([pl.col(c).cast(t) for c, t in AUDIT_SCHEMA.items()])


def summarize(audit: pl.DataFrame) -> pl.DataFrame:
    """Per (source, category, verifier): sample size, comparisons, agreement and the false-pass /
    false-fail estimates with 95% Wilson intervals."""
    if audit.height == 0:
        return pl.DataFrame()
    cmp = pl.col("second_passed").is_not_null()
    agg = audit.group_by(GROUP_KEYS).agg(
        pl.len().alias("sampled"),
        pl.col("status").is_in(VERDICT_STATUSES).sum().alias("verdicts"),
        cmp.sum().alias("compared"),
        pl.col("agree").fill_null(False).sum().alias("agreed"),
        (cmp & pl.col("primary_passed")).sum().alias("primary_passes"),
        (cmp & pl.col("primary_passed") & ~pl.col("second_passed")).sum().alias("false_pass"),
        (cmp & ~pl.col("primary_passed")).sum().alias("primary_fails"),
        (cmp & ~pl.col("primary_passed") & pl.col("second_passed")).sum().alias("false_fail"),
        pl.col("second_method").filter(pl.col("second_method") != "none").first().alias("method"),
        pl.col("second_note").filter(~cmp).mode().sort().first().alias("note"),  # the commonest reason
    ).sort(GROUP_KEYS, nulls_last=True)
    rows = []
    for r in agg.to_dicts():
        for name, k, n in (("agreement", r["agreed"], r["compared"]), ("false_pass_rate", r["false_pass"],
                           r["primary_passes"]), ("false_fail_rate", r["false_fail"], r["primary_fails"])):
            lo, hi = wilson(k, n)
            r[name], r[f"{name}_lo"], r[f"{name}_hi"] = (k / n if n else None), lo, hi
        r["method"] = r["method"] or "none"
        r["note"] = None if r["compared"] == r["sampled"] else r["note"]
        rows.append(r)
    return pl.DataFrame(rows, infer_schema_length=None)


def _rate(r: dict, name: str, k: str, n: str) -> str:
    if not r[n]:
        return "–"
    return f"{r[name]:.1%} ({r[k]}/{r[n]}) [{r[f'{name}_lo']:.1%}, {r[f'{name}_hi']:.1%}]"


def markdown(summary: pl.DataFrame) -> str:
    """The summary as a Markdown table (asset metadata and the data card)."""
    if summary.height == 0:
        return "_no verdicts sampled_\n"
    head = ("| source | category | verifier | second method | sampled | compared | agreement [95% CI] "
            "| false pass [95% CI] | false fail [95% CI] | note |\n|" + "---|" * 10 + "\n")
    body = "".join(
        f"| {r['source']} | {r['category']} | {r['verifier']} | {r['method']} | {r['sampled']} | {r['compared']} "
        f"| {_rate(r, 'agreement', 'agreed', 'compared')} "
        f"| {_rate(r, 'false_pass_rate', 'false_pass', 'primary_passes')} "
        f"| {_rate(r, 'false_fail_rate', 'false_fail', 'primary_fails')} | {r['note'] or ''} |\n"
        for r in summary.to_dicts())
    return head + body


def audit_markdown(lake) -> str | None:
    """The latest verifier_audit as a Markdown table, or None when it was never materialized. The data
    card reads the table rather than depending on the asset: an audit is a diagnostic and must neither
    block nor re-trigger the training mix."""
    version = lake.version("verifier_audit")
    if version is None:
        return None
    return f"Delta version {version} of `verifier_audit`.\n\n" + markdown(summarize(lake.read("verifier_audit")))
