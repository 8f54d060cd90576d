"""Synthetic data for benchmarks.scale: word problems with numeric answers (planted exact duplicates
and paraphrases) and import-teacher response files, written as the files a user would point at.

Everything is seeded numpy over a few hundred templates x names x objects x numbers, so the texts are
diverse enough for dedup (no two templates collide by accident) and cheap to make at a million rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elif", "Farid", "Gita", "Hugo", "Ines", "Jun", "Kofi", "Lena", "Mateo",
         "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Viktor", "Wen", "Xavi", "Yara", "Zane"]
OBJECTS = ["apples", "marbles", "stamps", "books", "coins", "pencils", "stickers", "shells", "cards", "beads",
           "tickets", "cookies", "bottles", "bricks", "seeds", "candles", "ribbons", "buttons", "kites", "lamps"]
PLACES = ["at the market", "in the garden", "at school", "in the attic", "at the fair", "in the library",
          "at the harbour", "in the workshop", "at the bakery", "on the farm"]
# (template, paraphrase template, answer function of a, b, c)
TEMPLATES = [
    ("{n} has {a} {o} {p} and buys {b} more. How many {o} does {n} have now?",
     "After buying {b} more {o} {p}, how many {o} does {n} own if {n} started with {a}?", lambda a, b, c: a + b),
    ("{n} had {a} {o} {p} and gave away {b}. How many {o} are left?",
     "If {n} gives away {b} of {n}'s {a} {o} {p}, how many remain?", lambda a, b, c: a - b),
    ("{n} packs {a} boxes with {b} {o} each {p}. How many {o} are packed in total?",
     "There are {a} boxes {p}, each holding {b} {o}, packed by {n}. What is the total number of {o}?",
     lambda a, b, c: a * b),
    ("{n} shares {a} {o} equally among {b} friends {p} and keeps the remainder. How many does {n} keep?",
     "{a} {o} are split evenly between {b} friends of {n} {p}; the leftovers stay with {n}. How many stay?",
     lambda a, b, c: a % b),
    ("{n} earns {a} dollars a day for {b} days {p} and spends {c} dollars. How much money is left?",
     "Working {b} days {p} at {a} dollars per day, {n} then spends {c} dollars. What remains?",
     lambda a, b, c: a * b - c),
    ("A shelf {p} holds {a} rows of {b} {o}; {n} removes {c}. How many {o} are on the shelf?",
     "{n} takes {c} {o} off a shelf {p} that had {a} rows with {b} {o} in each. How many are still there?",
     lambda a, b, c: a * b - c),
]


def make_queries(n: int, seed: int, start: int = 0, dup_share: float = 0.03,
                 para_share: float = 0.03) -> list[dict]:
    """n rows {question, answer, kind}: distinct problems, then a dup_share of exact duplicates (case
    and spacing changed) and a para_share of paraphrases of earlier rows, interleaved (seeded)."""
    rng = np.random.default_rng(seed)
    n_dup, n_para = int(n * dup_share), int(n * para_share)
    n_base = n - n_dup - n_para
    t = rng.integers(0, len(TEMPLATES), n_base)
    names, objs, places = (rng.integers(0, len(x), n_base) for x in (NAMES, OBJECTS, PLACES))
    abc = rng.integers(2, 10_000, (n_base, 3))
    abc[:, 1] = np.maximum(2, abc[:, 1] % 97)  # b small (a divisor / a count of days)
    base = []
    for i in range(n_base):
        a, b, c = (int(x) for x in abc[i])
        if TEMPLATES[t[i]][2] is TEMPLATES[1][2]:
            a += b  # no negative counts
        fields = {"n": NAMES[names[i]], "o": OBJECTS[objs[i]], "p": PLACES[places[i]], "a": a, "b": b, "c": c}
        # the row number keeps every base problem distinct even when the random draws repeat
        q = TEMPLATES[t[i]][0].format(**fields) + f" (case {start + i})"
        para = TEMPLATES[t[i]][1].format(**fields) + f" (case {start + i})"
        base.append({"question": q, "answer": str(TEMPLATES[t[i]][2](a, b, c)), "kind": "base", "_para": para})
    picks = rng.integers(0, max(n_base, 1), n_dup + n_para)
    extra = []
    for j, k in enumerate(picks):
        src = base[k]
        if j < n_dup:
            extra.append({"question": "  " + src["question"].upper() + " ", "answer": src["answer"], "kind": "duplicate"})
        else:
            extra.append({"question": src["_para"], "answer": src["answer"], "kind": "paraphrase"})
    rows = base + extra
    order = rng.permutation(len(rows))
    return [{k: v for k, v in rows[i].items() if k != "_para"} for i in order]


def response_text(question_id: int, answer: str, correct: bool, rng) -> str:
    wrong = str(int(answer) + int(rng.integers(1, 9))) if answer.lstrip("-").isdigit() else "0"
    final = answer if correct else wrong
    steps = int(rng.integers(1, 4))
    think = " ".join(f"Step {s + 1}: work through the numbers of problem {question_id}." for s in range(steps))
    return f"<think>\n{think}\n</think>\n<answer>\nThe answer is \\boxed{{{final}}}.\n</answer>"


def write_jsonl(path: Path, rows) -> None:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def write_teacher_files(root: Path, queries: list[dict], teachers: int, samples: int, seed: int) -> list[Path]:
    """One import file per teacher: `samples` responses per query; teacher t is right with a per-query
    probability that rises with t (weak -> strong), so pass rates and CV vary."""
    paths = []
    hardness = np.random.default_rng(seed).random(len(queries))
    for t in range(teachers):
        rng = np.random.default_rng(seed + 1 + t)
        p = np.clip(0.35 + 0.3 * t / max(teachers - 1, 1) + 0.5 - hardness, 0.02, 0.98)
        path = root / f"teacher_{t}.jsonl"
        with open(path, "w") as f:
            for i, q in enumerate(queries):
                for _ in range(samples):
                    f.write(json.dumps({"question": q["question"],
                                        "response": response_text(i, q["answer"], rng.random() < p[i], rng)}) + "\n")
        paths.append(path)
    return paths
