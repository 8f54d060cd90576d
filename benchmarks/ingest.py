"""Ingest + clean of 1M synthetic rows: rows/s and peak memory.

    .venv/bin/python -m benchmarks.ingest [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from benchmarks._util import figure, run_measured


def write_rows(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    templates = [
        "What is {a} plus {b}?",
        "A train travels {a} km in {b} hours. What is its average speed in km/h?",
        "Compute the remainder when {a} is divided by {b}.",
        "See https://example.com/{a} and find {b}.",  # dropped: URL
        "Using the figure below, find angle {a}.",  # dropped: media
    ]
    with open(path, "w") as f:
        for i in range(n):
            a, b = rng.randint(1, 10**6), rng.randint(1, 999)
            q = templates[i % len(templates)].format(a=a, b=b)
            if i % 97 == 0:
                q = "What is 1 plus 1?"  # exact duplicates
            f.write(json.dumps({"question": q, "answer": f"work...\n#### {a + b}", "id": i}) + "\n")


def ingest_and_clean(path: str) -> tuple[int, int]:
    from am_assets.ingest.logic import clean_queries, ingest_source
    from resources.config import CleaningConfig, FieldMapping, FileSource

    src = FileSource(name="bench", kind="file", path=Path(path), category="math",
                     mapping=FieldMapping(answer="answer", answer_format="gsm8k", id="id"))
    rows, rejected = ingest_source(src, CleaningConfig())
    cleaned = clean_queries(rows, CleaningConfig())
    return cleaned.height, int(cleaned["drop_reason"].is_null().sum())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        write_rows(path, args.rows)
        (n, kept), seconds, peak = run_measured(ingest_and_clean, str(path))
    assert n == args.rows, (n, args.rows)
    figure(f"ingest+clean rows/s ({args.rows:,} rows, {kept:,} kept)", n / seconds, "rows/s")
    figure("ingest+clean peak memory", peak / 2**20, "MiB")


if __name__ == "__main__":
    main()
