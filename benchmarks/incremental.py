"""No-op re-materialization of the whole graph (8 shards x 2 teachers), and wall time per asset.

    .venv/bin/python -m benchmarks.incremental            # tiny 8 x 2 project in a temp dir
    .venv/bin/python -m benchmarks.incremental --demo     # also: the shipped demo config, fresh lake

The first build is timed per asset; then the same graph is materialized again with nothing changed
(every partition fresh): the figure is how long it takes to decide that and run nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml


def tiny_config(root: Path) -> Path:
    questions = [f"What is {a} + {b}? Reply with only the number." for a in range(1, 5) for b in range(1, 5)]
    src = root / "q.jsonl"
    src.write_text("".join(json.dumps({"question": q, "answer": str(eval(q[8:q.index("?")]))}) + "\n"
                           for q in questions))
    teacher = {"kind": "vllm", "model": "smollm2-135m", "kv_cache_gib": 1,
               "sampling": {"n": 1, "max_tokens": 8}}
    config = {
        "lake_root": str(root / "lake"), "shards": 8,
        "sources": [{"name": "q", "kind": "file", "path": str(src), "category": "math",
                     "mapping": {"question": "question", "answer": "answer"}}],
        "benchmarks": [{"name": "b", "kind": "reasoning_gym", "datasets": ["basic_arithmetic"], "count": 2,
                        "samples": 1, "max_tokens": 8}],
        "teachers": [{"name": "t1", **teacher}, {"name": "t2", **teacher, "sampling": {"n": 1, "max_tokens": 8,
                                                                                      "temperature": 1.0}}],
        "verification": {"sandbox": "local"},
        "mix": {"exclude_flags": [], "response_teachers": "all", "cv_threshold": {"math": -1.0}},
        "training": {"max_steps": 1, "global_batch": 2, "per_device_batch": 2, "max_seq_length": 256,
                     "models_dir": str(root / "models")},
    }
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def build_and_noop(config: Path, label: str, noop: bool = True) -> None:
    import dagster as dg

    from am_distill.cli.runner import materialize_all
    from definitions import build_defs

    defs = build_defs(config)
    with dg.instance_for_test() as instance:
        start = time.perf_counter()
        report = materialize_all(defs, instance, log=lambda *_: None)
        print(f"{label}: first build wall time: {time.perf_counter() - start:,.1f} s "
              f"({len(report.ran)} partitions)", flush=True)
        for name, sec in report.seconds.items():
            print(f"{label}: {name} wall time: {sec:,.1f} s", flush=True)
        if noop:
            start = time.perf_counter()
            again = materialize_all(defs, instance, log=lambda *_: None)
            seconds = time.perf_counter() - start
            assert again.ran == [], again.ran
            print(f"{label}: no-op re-materialization of the whole graph: {seconds:,.1f} s (target < 30 s)",
                  flush=True)
            cursor = None
            for _ in range(2):  # the second tick is the steady state the sensor repeats every 30 s
                start = time.perf_counter()
                result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
                seconds, cursor = time.perf_counter() - start, result.cursor
            print(f"{label}: automation tick with nothing changed: {seconds:,.1f} s, "
                  f"{result.total_requested} partitions requested", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--demo", action="store_true", help="also build the shipped demo config in a temp lake")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        build_and_noop(tiny_config(Path(tmp)), "8 shards x 2 teachers")
        if args.demo:
            demo = yaml.safe_load((Path(__file__).resolve().parent.parent / "pipeline.yaml").read_text())
            demo["lake_root"] = str(Path(tmp) / "demo_lake")
            demo.setdefault("mix", {})["export_dir"] = str(Path(tmp) / "exports")
            demo.setdefault("training", {})["models_dir"] = str(Path(tmp) / "demo_models")
            path = Path(tmp) / "demo.yaml"
            path.write_text(yaml.safe_dump(demo))
            build_and_noop(path, "demo")  # materialize_all closes the models it opened


if __name__ == "__main__":
    main()
