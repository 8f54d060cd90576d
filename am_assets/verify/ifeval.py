"""IFEval-style instruction-following validators (strict mode); score = mean over the constraints.

Why not lm-eval's registry (lm_eval.tasks.ifeval.instructions_registry): lm-eval is not installed and
pulls a large stack (datasets, evaluate, sacrebleu, ...), and its instructions_util downloads NLTK's
punkt data at import, which fails offline. These are the 25 standard IFEval instruction ids with the
reference implementation's semantics (google-research instruction_following_eval); sentences and
words are counted with regexes instead of NLTK's tokenizers, and language detection uses langdetect
as the reference does.
"""

from __future__ import annotations

import json
import re
from typing import Callable

from am_assets.verify.base import Verdict, Verifier, no_reference

NAME = "ifeval"
VERSION = "ifeval/1"


def _compare(count: int, relation: str | None, n: int) -> bool:
    if relation in ("less than", "less_than"):
        return count < n
    return count >= n  # "at least" (the reference's default)


def _language(text: str) -> str | None:
    try:
        from langdetect import DetectorFactory, detect

        DetectorFactory.seed = 0
        return detect(text)
    except Exception:  # noqa: BLE001 - langdetect raises on text without letters
        return None


def _sentences(text: str) -> int:
    return len([s for s in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if re.search(r"\w", s)])


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def _paragraphs_stars(text: str) -> list[str] | None:
    parts = re.split(r"\s?\*\*\*\s?", text)
    n = len(parts)
    for i, p in enumerate(parts):
        if not p.strip() and i not in (0, n - 1):
            return None  # an empty paragraph in the middle fails, as in the reference
    return [p for p in parts if p.strip()]


def _nth_paragraph(text, num_paragraphs, nth_paragraph, first_word, **_):
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paragraphs) != num_paragraphs or not 1 <= nth_paragraph <= len(paragraphs):
        return False
    words = paragraphs[nth_paragraph - 1].strip().split()
    first = re.sub(r"^[^\w]+|[^\w]+$", "", words[0]).lower() if words else ""
    return first == str(first_word).lower()


def _postscript(text, postscript_marker, **_):
    marker = postscript_marker.strip().lower()
    if marker == "p.p.s":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "p.s.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker) + r".*$"
    return bool(re.findall(pattern, text.lower(), flags=re.MULTILINE))


def _json(text, **_):
    value = re.sub(r"^```(?:json|Json|JSON)?\s*|\s*```$", "", text.strip())
    try:
        json.loads(value)
        return True
    except ValueError:
        return False


def _highlights(text, num_highlights, **_):
    count = sum(1 for h in re.findall(r"\*[^\n\*]*\*", text) if h.strip("*").strip())
    count += sum(1 for h in re.findall(r"\*\*[^\n\*]*\*\*", text) if h.removeprefix("**").removesuffix("**").strip())
    return count >= num_highlights


def _sections(text, section_spliter, num_sections, **_):
    parts = re.split(r"\s?" + re.escape(section_spliter) + r"\s?\d+\s?", text)
    return len(parts) - 1 >= num_sections


def _two_responses(text, **_):
    parts = text.split("******")
    valid = []
    for i, p in enumerate(parts):
        if not p.strip():
            if i not in (0, len(parts) - 1):
                return False
        else:
            valid.append(p.strip())
    return len(valid) == 2 and valid[0] != valid[1]


def _bullets(text, num_bullets, **_):
    stars = re.findall(r"^\s*\*[^\*].*$", text, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", text, flags=re.MULTILINE)
    return len(stars) + len(dashes) == num_bullets


CHECKS: dict[str, Callable[..., bool]] = {
    "keywords:existence": lambda t, keywords, **_: all(re.search(re.escape(k), t, re.I) for k in keywords),
    "keywords:frequency": lambda t, keyword, frequency, relation=None, **_: _compare(
        len(re.findall(re.escape(keyword), t, re.I)), relation, frequency),
    "keywords:forbidden_words": lambda t, forbidden_words, **_: not any(
        re.search(r"\b" + re.escape(w) + r"\b", t, re.I) for w in forbidden_words),
    "keywords:letter_frequency": lambda t, letter, let_frequency, let_relation=None, **_: _compare(
        t.lower().count(letter.lower()), let_relation, let_frequency),
    "language:response_language": lambda t, language, **_: _language(t) == language,
    "length_constraints:number_sentences": lambda t, num_sentences, relation=None, **_: _compare(
        _sentences(t), relation, num_sentences),
    "length_constraints:number_paragraphs": lambda t, num_paragraphs, **_: (
        (p := _paragraphs_stars(t)) is not None and len(p) == num_paragraphs),
    "length_constraints:number_words": lambda t, num_words, relation=None, **_: _compare(
        len(_words(t)), relation, num_words),
    "length_constraints:nth_paragraph_first_word": _nth_paragraph,
    "detectable_content:number_placeholders": lambda t, num_placeholders, **_: len(
        re.findall(r"\[.*?\]", t)) >= num_placeholders,
    "detectable_content:postscript": _postscript,
    "detectable_format:number_bullet_lists": _bullets,
    "detectable_format:constrained_response": lambda t, **_: any(
        o in t.strip() for o in ("My answer is yes.", "My answer is no.", "My answer is maybe.")),
    "detectable_format:number_highlighted_sections": _highlights,
    "detectable_format:multiple_sections": _sections,
    "detectable_format:json_format": _json,
    "detectable_format:title": lambda t, **_: any(m.strip("<>").strip() for m in re.findall(r"<<[^\n]+>>", t)),
    "combination:two_responses": _two_responses,
    "combination:repeat_prompt": lambda t, prompt_to_repeat, **_: t.strip().lower().startswith(
        prompt_to_repeat.strip().lower()),
    "startend:end_checker": lambda t, end_phrase, **_: t.strip().strip('"').lower().endswith(end_phrase.strip().lower()),
    "startend:quotation": lambda t, **_: len(t.strip()) > 1 and t.strip()[0] == '"' and t.strip()[-1] == '"',
    "change_case:capital_word_frequency": lambda t, capital_frequency, capital_relation=None, **_: _compare(
        sum(1 for w in _words(t) if w.isupper()), capital_relation, capital_frequency),
    "change_case:english_capital": lambda t, **_: t.isupper() and _language(t) == "en",
    "change_case:english_lowercase": lambda t, **_: t.islower() and _language(t) == "en",
    "punctuation:no_comma": lambda t, **_: "," not in t,
}


def verify_if(answer: str, constraints_json: str | None) -> Verdict:
    if not constraints_json:
        return no_reference("instruction_constraints")
    try:
        constraints = json.loads(constraints_json)
    except json.JSONDecodeError as e:
        return Verdict(0.0, "verifier_error", {"error": f"instruction_constraints is not JSON: {e}"})
    if not constraints:
        return no_reference("instruction_constraints")
    unknown = sorted({c.get("id") for c in constraints if c.get("id") not in CHECKS})
    if unknown:  # scoring only the known ones would inflate the score: no verdict instead
        return Verdict(0.0, "verifier_error", {"error": "unknown instruction ids", "unknown": unknown})
    results = []
    for c in constraints:
        kwargs = {k: v for k, v in (c.get("kwargs") or {}).items() if v is not None}
        try:
            ok = bool(CHECKS[c["id"]](answer or "", **kwargs))
        except TypeError as e:  # missing or unexpected kwargs for this id
            return Verdict(0.0, "verifier_error", {"error": f"{c['id']}: bad kwargs: {e}"})
        results.append({"id": c["id"], "passed": ok})
    score = sum(r["passed"] for r in results) / len(results)
    return Verdict(score, "ok", {"constraints": results})


VERIFIER = Verifier(
    key="if", name=NAME, version=lambda ctx: VERSION, applies=lambda row: row.get("category") == "if",
    verify=lambda rows, ctx: [verify_if(r["_answer"], r.get("instruction_constraints")) for r in rows])
