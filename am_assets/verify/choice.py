"""Multiple-choice verifier: the option letter read from the answer part, compared with the correct letter.

The query carries its options in `metadata` (written at ingest by am_assets/ingest/choices.py):

    {"choices": {"options": ["4.2 J", "42 J", "420 J", "0.42 J"], "answer": "B", "shuffle_seed": 1234567}}

Options are labelled A, B, C, ... in list order, and the question text lists them as "(A) 4.2 J" lines.
`shuffle_seed` is null when the file fixed the order, else the per-item seed the options were shuffled with.

Reading the letter from the answer part, by tier (the first tier that yields an answer decides):
  1. every `\\boxed{}` (they must all name the same option);
  2. the LAST explicit statement: "answer is|:|= X", "correct/best/final option|choice is|: X", a line
     that is only a letter ("B", "(B)", "**B**", "B."), or a line that is an option ("(B) 42 J", "42 J");
     X is a letter or an option's text. Lines restating several options are a list, not an answer.
No free search for capital letters, so the article "A" ("A good approach ...") never counts. An answer
naming several different options ("A or C", "\\boxed{A, C}") fails. Letters are uppercase, except a
lone letter inside \\boxed{} or as the whole answer.
"""

from __future__ import annotations

import json
import re

from am_assets.verify.base import Verdict, Verifier

NAME = "choice"
VERSION = "choice/1"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Scores are on the category's own scale, so `passed = score > threshold` holds with the category
# thresholds as they are (science is judged 0-5 with threshold 4.99; every other category is 0-1).
FULL_MARK = {"science": 5.0}


def choices_of(metadata) -> dict | None:
    """The `choices` object of a query's metadata (JSON text or dict), or None when it has none."""
    if isinstance(metadata, str):
        if '"choices"' not in metadata:  # most rows: no JSON parse
            return None
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError:
            return None
    if not isinstance(metadata, dict):
        return None
    found = metadata.get("choices")
    return found if isinstance(found, dict) else None


def mc_question(stem: str, options: list[str]) -> str:
    """The question text the teacher sees: the stem, then one "(A) option" line per option."""
    return stem.rstrip() + "\n\n" + "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))


# ---------------------------------------------------------------- reading the letter

_MARKUP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|boxed)\s*\{([^{}]*)\}")
# "answer is|:|= X", "correct/best/final option|choice is|: X"; never a bare "option A" (prose says
# "let's check option A"). `rest` is a lookahead, so "answer is A. No, the answer is B" is two statements.
_STATEMENT = re.compile(r"(?i:\banswer|\b(?:correct|right|best|final)\s+(?:choice|option))(?:\*\*)?"
                        r"(?i:\s+(?:is|would\s+be|should\s+be|must\s+be)\b|\s*[:=])(?:\*\*)?[ \t]*"
                        r"(?i:either\s+)?(?i:(?:option|choice)\s+)?(?=(?P<rest>[^\n]*))")
_JOIN = r"\s*(?:,|/|&|\bor\b|\band\b)\s*"
_ARTICLE = re.compile(r"A\s+(?!(?:or|and|is|because|since|as|which|for|in|with|but)\b)[a-z]")


def _plain(text: str) -> str:
    """Markup off: \\text{B} -> B, $ * # > ` gone, whitespace collapsed."""
    for _ in range(3):  # nested \text{\textbf{B}}
        text = _MARKUP.sub(r"\1", text)
    return " ".join(re.sub(r"</?answer>|[$*#>`]", " ", text).split())


def _norm(text: str) -> str:
    return _plain(text).casefold().strip(" .;:!\"'")


def _option_index(text: str, options: list[str]) -> int | None:
    """Index of the one option whose text this is (markup, case and a final period ignored)."""
    t = _norm(text)
    hits = [i for i, o in enumerate(options) if t and _norm(o) == t]
    return hits[0] if len(hits) == 1 else None


def _lead(text: str, labels: str, options: list[str], lower: bool = False) -> list[str] | None:
    """The option the whole text is ("42 J"), else the letters named at its start ("(B)", "B or C",
    "B) 42 J"); None when it names none. A letter followed by another option's text names both."""
    text = _plain(text)
    whole = _option_index(text, options)
    if whole is not None:
        return [LETTERS[whole]]
    if _ARTICLE.match(text):  # "Answer: A good approach ...": the article, not option A
        return None
    one = rf"[(\[]?([{labels}{labels.lower() if lower else ''}])[)\]]?"
    m = re.match(rf"{one}(?=$|[\s.,;:!)\]])((?:{_JOIN}{one}(?=$|[\s.,;!)\]]))*)", text)
    if m is None:
        return None
    letters = [m.group(1)] + re.findall(rf"{_JOIN}{one}", m.group(2))
    rest = text[m.end():].lstrip(" .:)")
    i = _option_index(rest, options) if rest else None
    return [x.upper() for x in letters] + ([LETTERS[i]] if i is not None else [])


def _boxed_all(text: str) -> list[str]:
    """The content of every balanced \\boxed{...} / \\fbox{...}."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth = 0
        for j in range(m.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                out.append(text[m.end():j])
                break
    return out


def _line_answers(text: str, labels: str, options: list[str]) -> list[tuple[int, list[str]]]:
    """(position, letters) of lines that are only letters ("B", "(B)", "**B.**", "A or C") or only an option
    ("(B) 42 J", "42 J"). Option lines naming two or more different options are a restated option
    list, not an answer: they are all dropped."""
    single_line = len(text.strip().splitlines()) == 1  # a lone "b" is a letter too
    one = rf"[(\[]?([{labels}{labels.lower() if single_line else ''}])[)\]]?"
    letters_only = re.compile(rf"{one}(?:{_JOIN}{one})*[.:]?")  # "B", "(B).", "A or C"
    lone, option_lines, pos = [], [], 0
    for line in text.splitlines(keepends=True):
        plain = _plain(line).strip("-• ")
        if letters_only.fullmatch(plain):
            lone.append((pos, [x.upper() for x in re.findall(one, plain)]))
        elif plain:
            got = _lead(plain, labels, options)
            # "42 J" or "(B) 42 J"; a letter before any other text is prose ("A good approach ...")
            if got and (len(got) == 1 and _option_index(plain, options) is not None or got == got[:1] * 2):
                option_lines.append((pos, got[:1]))
        pos += len(line)
    if len({f[1][0] for f in option_lines}) > 1:
        option_lines = []
    return lone + option_lines


def read_choice(answer: str, options: list[str]) -> tuple[list[str], str]:
    """(letters, where from) of the final answer in the answer part; letters is empty when none is found.
    More than one distinct letter means the answer names several options."""
    labels = LETTERS[:len(options)]
    text = answer or ""
    named = set()
    for content in _boxed_all(text):
        plain = _plain(content)
        got = list(plain) if re.fullmatch(rf"[{labels}]{{2,}}", plain) else _lead(content, labels, options, lower=True)
        named.update(got or [])
    if named:  # every box is the final answer by convention, so all of them must agree
        return sorted(named), "boxed"
    found = [(m.start(), got, "statement") for m in _STATEMENT.finditer(text)
             if (got := _lead(m.group("rest"), labels, options))]
    found += [(p, got, "line") for p, got in _line_answers(text, labels, options)]
    if not found:
        return [], "none"
    _, got, where = max(found, key=lambda f: f[0])  # the last explicit statement wins
    return sorted(set(got)), where


def _check_layout(ch: dict) -> str | None:
    opts = ch.get("options")
    if not isinstance(opts, list) or not 2 <= len(opts) <= len(LETTERS) or not all(isinstance(o, str) for o in opts):
        return "metadata.choices.options must be a list of 2-26 strings"
    if ch.get("answer") not in LETTERS[:len(opts)]:
        return f"metadata.choices.answer {ch.get('answer')!r} is not one of the option letters {LETTERS[:len(opts)]}"
    return None


def verify_choice(answer: str | None, metadata, category: str | None) -> Verdict:
    """Full mark (the category's scale) when the answer part names exactly the correct option, else 0.
    A broken choices layout is a verifier_error; a response with no letter is a verdict of 0.
    (Truncated responses never get here: verify_partition gives them status `truncated`.)"""
    ch = choices_of(metadata)
    if ch is None:
        return Verdict(0.0, "no_reference", {"reason": "the query has no metadata.choices"})
    problem = _check_layout(ch)
    if problem:
        return Verdict(0.0, "verifier_error", {"error": problem})
    full = FULL_MARK.get(category or "", 1.0)
    details = {"reference": ch["answer"]}
    letters, where = read_choice(answer or "", ch["options"])
    details.update(extracted=",".join(letters) or None, **{"from": where})
    if not letters:
        return Verdict(0.0, "ok", {**details, "reason": "no option letter or option text in the answer part"})
    if len(letters) > 1:
        return Verdict(0.0, "ok", {**details, "reason": f"several options named: {', '.join(letters)}"})
    return Verdict(full if letters[0] == ch["answer"] else 0.0, "ok", details)


VERIFIER = Verifier(
    key="choice", name=NAME, version=lambda ctx: VERSION,
    applies=lambda row: choices_of(row.get("metadata")) is not None,  # options + letter: any category, no judge
    verify=lambda rows, ctx: [verify_choice(r["_answer"], r.get("metadata"), r.get("category")) for r in rows])
