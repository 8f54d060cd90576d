"""Verifier accuracy on a labelled corpus (benchmarks/verifier_corpus.py): false passes and false fails.

    python -m benchmarks.verifier_accuracy [--math 200] [--gsm8k 200]

Every row goes through `check_rows`, the path `am-distill check` and `verification_outcomes` take.
Prints, per verifier: rows, false-pass rate (passes among rows that must fail), false-fail rate (fails
among rows that must pass), truncated passes, and the kinds that went wrong. Targets (issue 12): math
false pass <= 0.5%, false fail <= 2%; multiple choice 100% on well-formed answers; 0 truncated passes.
"""

from __future__ import annotations

import argparse
import collections
import time

from am_assets.verify.check import check_rows
from benchmarks.verifier_corpus import DATA, build_corpus
from resources.config import VerificationConfig


def score_corpus(rows: list[dict], vcfg=None) -> dict[str, dict]:
    """verifier -> {rows, must_pass, must_fail, false_pass, false_fail, truncated_passes, wrong_kinds}."""
    verdicts = list(check_rows(rows, vcfg or VerificationConfig(), sandbox_factory=lambda: None))
    out: dict[str, dict] = {}
    for row, v in zip(rows, verdicts):
        s = out.setdefault(v.get("verifier", "unreadable"), {"rows": 0, "must_pass": 0, "must_fail": 0,
                                                              "false_pass": 0, "false_fail": 0,
                                                              "truncated_passes": 0,
                                                              "wrong_kinds": collections.Counter()})
        s["rows"] += 1
        passed = bool(v.get("passed"))
        s["must_pass" if row["expect_pass"] else "must_fail"] += 1
        if passed != row["expect_pass"]:
            s["false_pass" if passed else "false_fail"] += 1
            s["wrong_kinds"][row["kind"]] += 1
        if passed and row["kind"] == "truncated":
            s["truncated_passes"] += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--math", type=int, default=200, help="MATH-500 items")
    ap.add_argument("--gsm8k", type=int, default=200, help="GSM8K items")
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is missing: the corpus is built from ../shared/data")
    rows = build_corpus(args.math, args.gsm8k)
    t0 = time.perf_counter()
    stats = score_corpus(rows)
    secs = time.perf_counter() - t0
    print(f"corpus: {len(rows)} labelled responses from MATH-500, GSM8K, AIME 2024 (+ multiple choice), "
          f"verified in {secs:.1f} s")
    for name, s in sorted(stats.items()):
        fp = s["false_pass"] / max(1, s["must_fail"])
        ff = s["false_fail"] / max(1, s["must_pass"])
        print(f"{name}: false-pass {fp:.2%} ({s['false_pass']}/{s['must_fail']}), false-fail {ff:.2%} "
              f"({s['false_fail']}/{s['must_pass']}), truncated passes {s['truncated_passes']}"
              + (f", wrong on: {dict(s['wrong_kinds'].most_common(6))}" if s["wrong_kinds"] else ""))


if __name__ == "__main__":
    main()
