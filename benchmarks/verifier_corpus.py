"""A labelled verifier corpus from real public data (../shared/data) plus adversarial variants.

Each row is an `am-distill check` row (query columns + `response` + `finish_reason`) with two labels:
`expect_pass` (what a correct verifier says) and `kind` (the variant). Correct final answers come in
several notations and response formats; wrong ones are perturbed answers, a later wrong box after a
right one, a question expression restated without an answer, the right answer only inside the thinking,
"the answer is not X", truncated responses (unclosed thought, finish_reason length, an untagged import
cut mid-sentence) and multiple-choice answers in many forms. Labels are by construction, so a verdict
that disagrees is a false pass or a false fail.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from fractions import Fraction
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_INT = re.compile(r"^-?\d+$")
_FRAC = re.compile(r"^\\d?frac\{(-?\d+)\}\{(\d+)\}$")
_EXPR = re.compile(r"\$([^$]{3,80})\$")


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def math_items(n_math: int, n_gsm8k: int, seed: int = 0) -> list[dict]:
    """{question, reference (str or JSON number), reasoning, answer} from MATH-500, GSM8K and AIME 2024."""
    rng = random.Random(seed)
    items = []
    for r in rng.sample(_jsonl(DATA / "math" / "math500_test.jsonl"), n_math):
        items.append({"source": "math500", "question": r["problem"], "reference": r["answer"],
                      "reasoning": r["solution"].replace("\\boxed", "").strip(), "answer": r["answer"]})
    for r in rng.sample(_jsonl(DATA / "gsm8k" / "test.jsonl"), n_gsm8k):
        work, final = r["answer"].rsplit("####", 1)
        final = final.strip().replace(",", "")
        items.append({"source": "gsm8k", "question": r["question"], "reference": final,
                      "reasoning": re.sub(r"<<[^>]*>>", "", work).strip(), "answer": final})
    for r in _jsonl(DATA / "competition_math" / "aime24_qwen25math.jsonl"):
        ans = str(r["answer"]).strip()
        # AIME answers go in as JSON numbers, as many public math files store them
        items.append({"source": "aime24", "question": r["problem"], "reference": int(ans) if _INT.match(ans) else ans,
                      "reasoning": (r.get("solution") or "").replace("\\boxed", "").strip(), "answer": ans})
    return items


def _notations(ans: str) -> list[str]:
    """The same value written other ways."""
    out = []
    if _INT.match(ans):
        out += [f"{ans}.0", f"{int(ans):,}" if abs(int(ans)) >= 1000 else f"x = {ans}"]
    m = _FRAC.match(ans)
    if m:
        out += [f"{m.group(1)}/{m.group(2)}", f"\\dfrac{{{m.group(1)}}}{{{m.group(2)}}}"]
        f = Fraction(int(m.group(1)), int(m.group(2)))
        if f.denominator in (2, 4, 5, 8, 10, 20, 25):
            out.append(str(float(f)))
    if "\\frac" in ans:
        out.append(ans.replace("\\dfrac", "\\frac").replace("\\frac", "\\dfrac"))
    if ans.startswith("(") and ans.endswith(")"):
        out.append(f"\\left({', '.join(p.strip() for p in ans[1:-1].split(','))}\\right)")
    return out or [f" {ans} "]


def _wrong(ans: str, others: list[str]) -> str:
    if _INT.match(ans):
        return str(int(ans) + 1)
    m = _FRAC.match(ans)
    if m:
        return f"\\frac{{{int(m.group(1)) + 1}}}{{{m.group(2)}}}"
    if re.match(r"^-?\d+\.\d+$", ans):
        return str(round(float(ans) + 1.5, 4))
    norm = re.sub(r"\s", "", ans)
    return next((o for o in others if re.sub(r"\s", "", o) != norm and not _INT.match(o) and o not in ans
                 and ans not in o), f"{ans}+1")


def _row(item: dict, response: str, expect_pass: bool, kind: str, finish_reason: str | None = None) -> dict:
    return {"category": "math", "question": item["question"], "reference_answer": item["reference"],
            "response": response, "finish_reason": finish_reason, "expect_pass": expect_pass, "kind": kind,
            "source": item["source"]}


def math_rows(items: list[dict], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    answers = [it["answer"] for it in items]
    rows = []
    for it in items:
        ans, why = it["answer"], it["reasoning"] or "Let me work through it."
        wrong = _wrong(ans, rng.sample(answers, min(20, len(answers))))
        think = f"<think>\n{why}\n</think>\n"
        rows += [
            _row(it, f"{think}<answer>The final answer is $\\boxed{{{ans}}}$.</answer>", True, "boxed"),
            _row(it, f"{think}\nSo the answer is \\boxed{{{ans}}}.", True, "r1_style"),
            _row(it, f"<|begin_of_thought|>\n{why}\n<|end_of_thought|>\n<|begin_of_solution|>\nThus $\\boxed{{{ans}}}$\n"
                     f"<|end_of_solution|>", True, "skyt1_style"),
            _row(it, f"The answer is \\boxed{{{ans}}}.", True, "untagged_boxed"),
        ]
        rows += [_row(it, f"{think}<answer>\\boxed{{{alt}}}</answer>", True, "notation") for alt in _notations(ans)]
        if _INT.match(ans) or _FRAC.match(ans):  # statements the fallback reads (recorded as details.from)
            rows += [_row(it, f"{think}<answer>The final answer is ${ans}$.</answer>", True, "statement"),
                     _row(it, f"{think}<answer>{ans}</answer>", True, "bare_answer"),
                     _row(it, f"{why}\n\nSo, the final answer is {ans}.", True, "untagged_statement"),
                     # untagged: an early "answer" is not the conclusion (only the last lines count)
                     _row(it, f"I guess the answer is {ans}.\n{why}\nLet me redo this.\nStep one.\nStep two.\n"
                              "I cannot finish it.", False, "untagged_early_statement")]
        expr = _EXPR.search(it["question"])
        restated = expr.group(0) if expr else it["question"][:120]
        rows += [
            _row(it, f"{think}<answer>\\boxed{{{wrong}}}</answer>", False, "wrong"),
            _row(it, f"{think}<answer>First \\boxed{{{ans}}}, no: the answer is \\boxed{{{wrong}}}.</answer>", False,
                 "wrong_last_box"),
            _row(it, f"{think}<answer>We need to evaluate {restated} carefully.</answer>", False, "restated_question"),
            _row(it, f"<think>\n{why}\nMaybe \\boxed{{{ans}}}.\n</think>\n<answer>I am not sure.</answer>", False,
                 "answer_only_in_thinking"),
            _row(it, f"{think}<answer>The answer is not {ans}.</answer>", False, "negated"),
            _row(it, f"<think>\n{why[: max(1, len(why) // 2)]}", False, "truncated"),
            _row(it, f"{think}<answer>The final answer is $\\boxed{{{ans}}}$.</answer>", False, "truncated", "length"),
            _row(it, f"{why[: max(1, len(why) // 2)]} and then the", False, "truncated"),
        ]
    return rows


def choice_rows(items: list[dict], seed: int = 0) -> list[dict]:
    """Multiple choice built from integer-answer items: the right option among three perturbed ones."""
    rng = random.Random(seed)
    rows = []
    for it in (i for i in items if _INT.match(i["answer"])):
        ans = int(it["answer"])
        options = [str(v) for v in {ans, ans + 1, ans - 1, ans * 2 + 3}]
        rng.shuffle(options)
        if len(options) < 4:
            continue
        k = options.index(str(ans))
        letter, other = "ABCD"[k], "ABCD"[(k + 1) % 4]
        meta = {"choices": {"options": options, "answer": letter, "shuffle_seed": None}}
        question = it["question"] + "\n" + "\n".join(f"({c}) {o}" for c, o in zip("ABCD", options))
        cat = rng.choice(["science", "other"])

        def row(resp, ok, kind, finish_reason=None):
            return {"category": cat, "question": question, "reference_answer": letter, "metadata": meta,
                    "response": resp, "finish_reason": finish_reason, "expect_pass": ok, "kind": kind,
                    "source": it["source"]}

        think = "<think>\nA quick check of each option.\n</think>\n"
        rows += [row(f"{think}<answer>\\boxed{{{letter}}}</answer>", True, "mc_boxed"),
                 row(f"{think}<answer>({letter})</answer>", True, "mc_paren"),
                 row(f"{think}<answer>The answer is {letter}.</answer>", True, "mc_statement"),
                 row(f"{think}<answer>{letter}</answer>", True, "mc_bare"),
                 row(f"{think}<answer>**{letter}**</answer>", True, "mc_bold"),
                 row(f"{think}<answer>The answer is {options[k]}.</answer>", True, "mc_option_text"),
                 row(f"{think}<answer>\\boxed{{{other}}}</answer>", False, "mc_wrong"),
                 row(f"{think}<answer>A careful reading gives \\boxed{{{other}}}.</answer>" if letter != "A" else
                     f"{think}<answer>\\boxed{{{other}}}</answer>", False, "mc_article_a"),
                 row(f"{think}<answer>The answer is {letter} or {other}.</answer>", False, "mc_several"),
                 row(f"<think>\nIt is ({letter})", False, "truncated")]
    return rows


def build_corpus(n_math: int = 200, n_gsm8k: int = 200, seed: int = 0) -> list[dict]:
    items = math_items(n_math, n_gsm8k, seed)
    return math_rows(items, seed) + choice_rows(items, seed)
