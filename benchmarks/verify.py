"""Verification throughput on real data.

    .venv/bin/python -m benchmarks.verify [--workers 2]

- math answers/s: the Math-Verify pool (warm) over a mix of real answers: Sky-T1 MATH-500 answer parts,
  MATH-500 references as boxed answers (right and perturbed), GSM8K references (right and wrong).
  A second line keeps only the items that go through Math-Verify's LaTeX parser and sympy (plain
  numbers and string-identical answers take a fast path).
- code, per sandbox: accuracy (HumanEval canonical solutions at 1.0, four wrong variants of each
  below 1.0) and programs/s of the solution/driver harness next to the old single-process figure
  (Docker: container start-up included, one container per batch).
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from benchmarks._util import figure

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def math_items() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    from am_assets.ingest.adapters import extract_answer
    from am_assets.verify.base import answer_part
    from am_assets.verify.math_worker import fast_check, final_answer

    latex = []
    for line in (DATA / "math/math500_test.jsonl").read_text().splitlines():
        ref = json.loads(line)["answer"]
        latex += [(ref, f"Therefore the answer is \\boxed{{{ref}}}."), (ref, f"So we get \\boxed{{{ref}+1}}.")]
    mix = list(latex)
    with gzip.open(DATA / "reasoning_traces/skyt1_27b_math500.jsonl.gz", "rt") as fh:
        for line in fh:
            r = json.loads(line)
            code = r["code"] if isinstance(r["code"], list) else json.loads(r["code"])
            mix.append((r["gt"], answer_part(None, code[0])))
    for line in (DATA / "gsm8k/test.jsonl").read_text().splitlines():
        ref = extract_answer(json.loads(line)["answer"], "gsm8k", "answer")
        mix += [(ref, f"The total is \\boxed{{{ref}}}"), (ref, f"The total is \\boxed{{{ref}0}}")]
    slow = [(g, p) for g, p in mix if p and fast_check(g, final_answer(p)[0]) is None]
    return mix, slow


def plain_math_verify(items: list[tuple[str, str]]) -> float:
    """Answers/s of plain Math-Verify, one process, as open-r1's accuracy reward calls it."""
    import logging

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    for gold, pred in items:
        try:
            verify(parse(f"${gold}$"), parse(pred or ""))
        except Exception:  # noqa: BLE001 - a failed item still took its time
            pass
    return len(items) / (time.perf_counter() - t0)


def bench_math(workers: int) -> None:
    from am_assets.verify.math_pool import MathPool

    mix, latex = math_items()
    pool = MathPool(workers=workers, timeout_s=5.0)
    try:
        pool.verify(mix[:50])  # start the workers
        for name, items in (("math answers/s", mix), ("math answers/s (Math-Verify parser path only)", latex)):
            t0 = time.perf_counter()
            pool.verify(items)
            ours = len(items) / (time.perf_counter() - t0)
            plain = plain_math_verify(items)
            figure(f"{name} [{len(items)} answers, {workers} workers]", ours,
                   target=">= 500" if name == "math answers/s" else "")
            figure(f"{name}, plain Math-Verify in one process (open-r1)", plain)
            figure(f"{name}: pool / plain Math-Verify", ours / plain, unit="x", target=">= 1.7x on a quiet machine")
    finally:
        pool.close()


OLD_CODE_RATE = 65.0  # programs/s of the single-process harness (code-sandbox/1), docs/verify.md


def bench_code() -> None:
    """HumanEval canonical solutions and four known-wrong variants of each (tests/code_solutions.py).
    Each answer is a pair of processes now (the solution, and the trusted driver forked from the
    runner) where the old harness ran one; that is the cost of a verdict the program cannot forge."""
    from am_assets.verify.code_tests import verify_code
    from resources.sandbox import DockerSandbox, Limits, LocalSandbox, Program, docker_available
    from tests.code_solutions import VARIANTS, fenced, humaneval, wrong_variant

    tasks = humaneval(DATA / "code/HumanEval.jsonl.gz")
    good = [{"answer": fenced(t["code"]), "test_cases": t["test_cases"]} for t in tasks]
    bad = [{"answer": fenced(wrong_variant(t["code"], t["fn"], k)), "test_cases": t["test_cases"]}
           for k in VARIANTS for t in tasks]
    sandboxes = [("local", LocalSandbox(Limits()))]
    ok, why = docker_available("am-distill-sandbox:bookworm")
    if ok:
        sandboxes.append(("docker", DockerSandbox(Limits(), "am-distill-sandbox:bookworm")))
    else:
        print(f"code test programs/s (docker): skipped: {why}", flush=True)
    # the old harness's shape, measured now beside the new one (the machine's load changes figures
    # 3-5x): solution + test code in one process, as code-sandbox/1 ran them
    single = [Program(t["code"] + "\n" + json.loads(t["test_cases"])["test"] + f"\ncheck({t['fn'][0]})\n")
              for t in tasks]
    for name, sb in sandboxes:
        t0 = time.perf_counter()
        sb.run(single)
        base = len(single) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        verdicts = verify_code(good + bad, sb, max_tests=10, timeout_s=5.0)
        rate = len(verdicts) / (time.perf_counter() - t0)
        right = sum(v.score == 1.0 for v in verdicts[:len(good)]) / len(good)
        caught = sum(v.status == "ok" and v.score < 1.0 for v in verdicts[len(good):]) / len(bad)
        figure(f"code accuracy ({name}): known-correct scored 1.0 [{len(good)} HumanEval]", 100 * right, "%", ">= 99%")
        figure(f"code accuracy ({name}): known-wrong scored < 1.0 [{len(bad)} variants]", 100 * caught, "%", "100%")
        figure(f"code test programs/s ({name}) [{len(verdicts)} programs], old harness: {OLD_CODE_RATE:.0f} "
               f"on a quiet machine, {base:.1f} single-process now", rate, target=">= 0.5x the single-process figure")
        figure(f"code harness cost ({name}): new / single-process", rate / base, "x", ">= 0.5x")


def bench_repetitive() -> None:
    """The n-gram rule (repetitive_flags) over a partition as verification_outcomes re-verifies it from
    cache: 12k real short answers (GSM8K, MATH) and the Sky-T1 traces (x4, as four samples of a query),
    against the pure-Python version it replaced (tests/test_verify_quality.py)."""
    from am_assets.verify.quality import repetitive_flags
    from tests.test_verify_quality import _jsonl, reference_flags

    short = ([r["answer"] for name in ("train", "test") for r in _jsonl(DATA / f"gsm8k/{name}.jsonl")]
             + [r["solution"] for r in _jsonl(DATA / "math/math_test5000.json.gz")])[:12_000]
    traces = [r["code"][0] for name in ("skyt1_27b_math500", "skyt1_32b_ckpt140_aime24")
              for r in _jsonl(DATA / f"reasoning_traces/{name}.jsonl.gz")] * 4
    for texts in (short, short + traces):
        for name, fn in (("old", reference_flags), ("new", repetitive_flags)):
            t0 = time.perf_counter()
            flags, _ = fn(texts)
            figure(f"repetitive_flags s ({name}) [{len(short)} short + {len(texts) - len(short)} long texts, "
                   f"{sum(map(len, texts)) / 1e6:.0f}M chars, {sum(flags)} flagged]", time.perf_counter() - t0, "s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    bench_repetitive()
    bench_math(args.workers)
    bench_code()


if __name__ == "__main__":
    main()
