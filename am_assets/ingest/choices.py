"""Multiple-choice rows at ingest: the question shown with lettered options, the correct letter as
`reference_answer`, and `metadata.choices` (layout: am_assets/verify/choice.py).

Two shapes of file: options in an order the file fixes plus the correct letter (or 0-based index), and
GPQA-style correct + incorrect columns, whose order the file does not fix: those are shuffled per item
with a seed derived from the configured seed and the question, recorded as `shuffle_seed`.
Pure functions; they raise ValueError and the adapter names the field.
"""

from __future__ import annotations

import hashlib
import json
import random
import re

from am_assets.verify.api import LETTERS, mc_question


def option_list(value) -> list:
    """A list of options: a list, a JSON text holding one, or an object {"A": ..., "B": ...} in key order."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError("expected a list of options (or JSON text holding one)") from None
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        raise ValueError(f"expected a list of options, got {type(value).__name__}")
    return value


def letter_index(value, n: int) -> int:
    """"B", "b", "(B)", "B." -> 1. Numbers are refused: 0- or 1-based is the file's secret (use answer_index)."""
    m = re.fullmatch(r"\s*[(\[]?([A-Za-z])[)\]]?\.?\s*", value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"expected an option letter, got {value!r}"
                         + (" (a number: map it with answer_index, 0-based)" if str(value).strip().isdigit() else ""))
    i = LETTERS.index(m.group(1).upper())
    if i >= n:
        raise ValueError(f"letter {m.group(1)!r} but only {n} options ({LETTERS[0]}-{LETTERS[n - 1]})")
    return i


def index_value(value, n: int) -> int:
    """A 0-based option index (MMLU's `answer: 1`), as a number or digit text."""
    if isinstance(value, bool) or not (isinstance(value, int) or isinstance(value, str) and value.strip().isdigit()):
        raise ValueError(f"expected a 0-based option index, got {value!r}")
    i = int(value)
    if i >= n:
        raise ValueError(f"index {i} but only {n} options (0-{n - 1})")
    return i


def item_seed(base_seed: int, stem: str) -> int:
    """The per-item shuffle seed: stable for a question whatever its row number or file."""
    return int.from_bytes(hashlib.blake2b(f"{base_seed}:{stem}".encode(), digest_size=4).digest(), "big")


def _checked(options: list[str]) -> None:
    if not 2 <= len(options) <= len(LETTERS):
        raise ValueError(f"{len(options)} options; between 2 and {len(LETTERS)} are supported")
    if len({" ".join(o.casefold().split()) for o in options}) < len(options):
        raise ValueError("two options have the same text: an answer naming it could not be told apart")


def fixed_choices(stem: str, options: list[str], correct: int) -> tuple[str, str, dict]:
    """(question text, correct letter, metadata.choices) for options in the file's own order."""
    _checked(options)
    return mc_question(stem, options), LETTERS[correct], {"options": options, "answer": LETTERS[correct],
                                                          "shuffle_seed": None}


def shuffled_choices(stem: str, correct: str, incorrect: list[str], base_seed: int) -> tuple[str, str, dict]:
    """The same for correct + incorrect options: [correct, *incorrect] shuffled by
    random.Random(shuffle_seed), shuffle_seed = item_seed(base_seed, stem)."""
    options = [correct, *incorrect]
    _checked(options)
    seed = item_seed(base_seed, stem)
    random.Random(seed).shuffle(options)
    letter = LETTERS[options.index(correct)]
    return mc_question(stem, options), letter, {"options": options, "answer": letter, "shuffle_seed": seed}
