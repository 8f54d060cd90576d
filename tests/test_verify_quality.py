"""repetitive_flags (Polars, batched) against the pure-Python version it replaced, on real reasoning
traces and answers from ../shared/data and on built edge cases."""

from __future__ import annotations

import collections
import gzip
import hashlib
import json
import re
from pathlib import Path

import polars as pl
import pytest

from am_assets.verify.quality import TOKEN_PATTERN, _batches, _ngram_keys, repetitive_flags

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
_OLD_TOKEN = re.compile(r"\w+|[^\w\s]")


def reference_flags(texts: list[str | None], n: int = 20, max_count: int = 20) -> tuple[list[bool], int]:
    """The implementation before the Polars rewrite (am_assets/verify/quality.py @814b054), verbatim."""
    counts: collections.Counter[bytes] = collections.Counter()
    per_text = []
    for t in texts:
        toks = _OLD_TOKEN.findall(t or "")
        keys = [hashlib.blake2b(" ".join(toks[i:i + n]).encode(), digest_size=8).digest()
                for i in range(len(toks) - n + 1)]
        counts.update(keys)
        per_text.append(set(keys))
    frequent = {k for k, c in counts.items() if c > max_count}
    return [bool(keys & frequent) for keys in per_text], len(frequent)


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [json.loads(line) for line in fh]


def _math_solutions() -> list[str]:
    """The 501 MATH test solutions drawing an [asy] figure (they share Asymptote boilerplate) and 500 others."""
    solutions = [r["solution"] for r in _jsonl(DATA / "math/math_test5000.json.gz")]
    return [s for s in solutions if "[asy]" in s] + [s for s in solutions if "[asy]" not in s][:500]


@pytest.fixture(scope="module")
def real_texts() -> dict[str, list[str]]:
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (see ../shared/data/SOURCES.md)")
    traces = [r["code"][0] for name in ("skyt1_27b_math500", "skyt1_32b_ckpt140_aime24")
              for r in _jsonl(DATA / f"reasoning_traces/{name}.jsonl.gz")]
    return {
        "Sky-T1 long traces": traces,
        "MATH solutions": _math_solutions(),
        "GSM8K answers + MBPP code": [r["answer"] for r in _jsonl(DATA / "gsm8k/test.jsonl")][:800]
        + [r["code"] for r in _jsonl(DATA / "code/mbpp.jsonl")][:300],
    }


def test_token_pattern_matches_python_on_every_assigned_code_point():
    import unicodedata

    # a doubled character tells the classes apart: word -> one token, other -> two, space -> none.
    # Code points newer than Python's Unicode tables (unassigned there, letters for Rust) may differ.
    pairs = [chr(c) * 2 for c in range(0x110000)
             if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn"]
    ours = pl.Series(pairs).str.extract_all(TOKEN_PATTERN).to_list()
    assert [p for p, toks in zip(pairs, ours) if toks != _OLD_TOKEN.findall(p)] == []
    rust_w = pl.Series(pairs).str.extract_all(r"\w+|[^\w\s]").to_list()  # what the plain pattern would give
    assert sum(toks != _OLD_TOKEN.findall(p) for p, toks in zip(pairs, rust_w)) > 1000


def test_tokens_match_python_re_on_real_text(real_texts):
    for name, texts in real_texts.items():
        ours = pl.Series(texts).str.extract_all(TOKEN_PATTERN).to_list()
        assert ours == [_OLD_TOKEN.findall(t) for t in texts], name


# (corpus, n, max_count, texts the reference flags): the paper's rule on long traces (49 of 530 loop
# or share a passage) and on MATH figures (108 of 1001), and short n-grams, where flags are many
REAL_CASES = [("Sky-T1 long traces", 20, 20, 49), ("MATH solutions", 20, 20, 108),
              ("MATH solutions", 8, 5, 797), ("GSM8K answers + MBPP code", 8, 5, 227)]


@pytest.mark.parametrize(("name", "n", "max_count", "flagged"), REAL_CASES)
def test_flags_match_reference_on_real_text(real_texts, name, n, max_count, flagged):
    texts = real_texts[name]
    expected = reference_flags(texts, n, max_count)
    assert sum(expected[0]) >= flagged  # something to compare: a share of the texts is flagged
    assert repetitive_flags(texts, n, max_count) == expected
    # several batches (about 30 traces or 400 short answers each) count and flag the same as one
    assert repetitive_flags(texts, n, max_count, batch_bytes=200_000) == expected
    # pass 2 re-tokenizes the batches whose windows pass 1 could not keep: none kept, or some
    assert repetitive_flags(texts, n, max_count, batch_bytes=200_000, keep_bytes=0) == expected
    first = _ngram_keys(*_batches(pl.Series(texts), 200_000)[0], n).height  # keep exactly the first batch's
    assert repetitive_flags(pl.Series(texts), n, max_count, batch_bytes=200_000, keep_bytes=12 * first) == expected


SENTENCE = "Wait, let me recompute the sum of the first ten terms of the sequence once more to be sure."
BOILERPLATE = ("Note: this answer was generated automatically; the reasoning above follows the standard "
               "template used for every problem in this set, and the final answer is boxed below.")


def _clean(k: int) -> str:
    return f"Answer {k}: the value is {k * 7} since {k} times seven is {k * 7}, as checked by hand."


def adversarial_cases() -> dict[str, list[str | None]]:
    shared = lambda m: [f"{_clean(k)} {BOILERPLATE} Done {k}." for k in range(m)]  # noqa: E731
    return {
        "looping response": [" ".join([SENTENCE] * 30)] + [_clean(k) for k in range(40)],
        "boilerplate x25 (flagged)": shared(25) + [_clean(k) for k in range(100, 120)],
        "boilerplate x15 (not flagged)": shared(15) + [_clean(k) for k in range(100, 120)],
        "boilerplate x20 (count 20 is not more than 20)": shared(20),
        "boilerplate x21": shared(21),
        "shorter than n, repeated": ["one two three four five six seven eight nine ten"] * 50,
        # 30 identical 10-token texts: 20-grams spanning two texts would occur 29 times
        "windows must not cross texts": ["a b c d e f g h i j"] * 30,
        "unicode and CJK": [
            "这是一个测试。我们计算：１２３＋４５６＝５７９，对吗？" * 25,
            "Cafe\u0301 déjà vu — naïve coöperation, x² + y³ = z½, Ⅻ o'clock. " * 25,  # e + combining acute, ², Ⅻ
            "नमस्ते दुनिया, यह परीक्षण है। " * 25,  # Devanagari vowel signs (combining marks)
            "\u00e9tude e\u0301tude \x1cfield\x1dsep\u2028line\u00a0nbsp " * 25,
        ] + [_clean(k) for k in range(5)],
        "punctuation only": ["?!" * 40, "...", "—" * 3, "(((" * 30],
        "None and empty": [None, "", "   ", None, " ".join([SENTENCE] * 30)],
        "no texts": [],
    }


@pytest.mark.parametrize("name", list(adversarial_cases()))
def test_flags_match_reference_on_edge_cases(name):
    texts = adversarial_cases()[name]
    expected = reference_flags(texts)
    assert repetitive_flags(texts) == expected
    assert repetitive_flags(texts, batch_bytes=64) == expected  # every text its own batch


def test_edge_case_outcomes():
    cases = adversarial_cases()
    flags = lambda name: repetitive_flags(cases[name])[0]  # noqa: E731
    assert flags("looping response") == [True] + [False] * 40
    assert flags("boilerplate x25 (flagged)") == [True] * 25 + [False] * 20
    assert not any(flags("boilerplate x15 (not flagged)"))
    assert not any(flags("boilerplate x20 (count 20 is not more than 20)"))
    assert all(flags("boilerplate x21"))
    assert not any(flags("shorter than n, repeated")) and not any(flags("windows must not cross texts"))
    assert flags("unicode and CJK") == [True] * 4 + [False] * 5
    assert flags("punctuation only") == [True, False, False, True]
    assert flags("None and empty") == [False, False, False, False, True]
    assert repetitive_flags([]) == ([], 0)
