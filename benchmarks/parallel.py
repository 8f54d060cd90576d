"""verification_outcomes over 8 teacher x shard partitions with 1 worker vs N workers (`--parallel N`).

    .venv/bin/python -m benchmarks.parallel [--queries 4000] [--samples 4] [--workers 2]

A benchmarks.scale project (2 import teachers x 4 shards, numeric answers) is built up to
teacher_responses once; then verification_outcomes is verified from scratch (its table removed, the
runs forced) through the runner with 1 worker and with N, and the seconds and the speed-up are
printed. The math verifier already spreads one partition over a process pool, so on a 2-core box
the gain from running partitions side by side is bounded by the cores the pool leaves idle.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.scale import write_project

UPSTREAM = ["raw_queries", "clean_queries", "query_embeddings", "benchmarks", "dedup_clusters",
            "unique_queries", "teacher_responses"]


def _verify_from_scratch(defs, instance, lake_root: Path, workers: int) -> float:
    from am_distill.cli.runner import materialize_all

    shutil.rmtree(lake_root / "verification_outcomes", ignore_errors=True)
    start = time.perf_counter()
    report = materialize_all(defs, instance, select=["verification_outcomes"], force=True,
                             log=lambda *_: None, parallel=workers)
    seconds = time.perf_counter() - start
    if report.failures:
        raise SystemExit(f"verification failed: {report.failures}")
    ran = [pk for name, pk in report.ran if name == "verification_outcomes"]
    print(f"parallel: verification_outcomes, {len(ran)} partitions, {workers} worker(s): {seconds:.1f} s")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=4000)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    logging.getLogger("dagster").setLevel(logging.WARNING)
    import dagster as dg

    from am_distill.cli.runner import materialize_all
    from definitions import build_defs

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root, queries=args.queries, teachers=2, samples=args.samples, shards=4, semantic=False)
        cfg = yaml.safe_load((root / "pipeline.yaml").read_text())
        cfg["benchmarks"] = []  # decontamination is not measured here
        (root / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
        defs = build_defs(root / "pipeline.yaml")
        with dg.instance_for_test() as instance:
            materialize_all(defs, instance, select=UPSTREAM, log=lambda *_: None)
            one = _verify_from_scratch(defs, instance, root / "lake", 1)
            many = _verify_from_scratch(defs, instance, root / "lake", args.workers)
    responses = args.queries * 2 * args.samples
    print(f"parallel: {responses:,} responses; speed-up with {args.workers} workers: {one / many:.2f}x")


if __name__ == "__main__":
    main()
