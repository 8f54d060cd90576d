"""The whole graph up to training_mix at scale: synthetic queries, import teachers, a temp lake.

    .venv/bin/python -m benchmarks.scale --queries 50000 --teachers 2 --samples 4 [--shards 64]
        [--semantic] [--keep DIR] [--storage sqlite|postgres] [--parallel N]

Generates N word problems with numeric answers (3% planted exact duplicates, 3% paraphrases) plus 1%
more for the incremental step, and one import-teacher file per teacher with n responses per query
(right or wrong by a per-query skill, so pass rates and CV vary). Then, in a fresh process, builds
every asset up to training_mix through the project's runner (what `am-distill materialize` runs, on a
Dagster instance in a temp DAGSTER_HOME) and prints: seconds and peak RSS per asset, Delta files per
table, the no-op re-run time, and the time to add a source of +1% queries (the teacher files already
hold their responses, as when importing a released dataset).

Peak RSS per asset is sampled (every 50 ms) over this process and its children while that asset's
partitions run; `overall peak RSS` is the process's own high-water mark (getrusage).
--storage postgres puts the Dagster instance on a throwaway PostgreSQL server (the production
profile's storage, benchmarks/pg_server.py) instead of the default SQLite, which creates an event-log
database per run and connects per event. Semantic dedup is off unless --semantic; query_embeddings
still embeds every query, with the static model2vec embedder unless --embedder sentence_transformers
(embedding cost: benchmarks.dedup). --parallel N runs N partitions of an asset at once, each build
step alike (`am-distill materialize --parallel N`); peak RSS then counts the worker processes too.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import resource
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import yaml

from benchmarks._util import run_measured

TARGET_ASSET = "training_mix"


def write_project(root: Path, queries: int, teachers: int, samples: int, shards: int, semantic: bool,
                  embedder: str = "model2vec", seed: int = 0) -> dict:
    from benchmarks.scale_data import make_queries, write_jsonl, write_teacher_files

    base = make_queries(queries, seed)
    extra = make_queries(max(1, queries // 100), seed + 1000, start=10 * queries + 1)
    write_jsonl(root / "base.jsonl", base)
    write_jsonl(root / "extra.jsonl", extra)
    paths = write_teacher_files(root, base + extra, teachers, samples, seed)
    source = {"kind": "file", "category": "math", "mapping": {"question": "question", "answer": "answer"}}
    config = {
        "lake_root": str(root / "lake"), "shards": shards,
        "sources": [{"name": "base", "path": str(root / "base.jsonl"), **source}],
        "benchmarks": [{"name": "heldout", "kind": "reasoning_gym", "datasets": ["basic_arithmetic"], "count": 20,
                        "samples": 1, "max_tokens": 8}],
        "teachers": [{"name": f"t{t}", "kind": "import", "path": str(p), "sampling": {"n": samples}}
                     for t, p in enumerate(paths)],
        "dedup": {"semantic": semantic, "embedder": {"kind": embedder}},
        "verification": {"sandbox": "local"},
        "mix": {"export_dir": str(root / "exports")},
        "training": {"models_dir": str(root / "models")},
    }
    (root / "pipeline.yaml").write_text(yaml.safe_dump(config))
    config["sources"].append({"name": "extra", "path": str(root / "extra.jsonl"), **source})
    (root / "pipeline_plus1.yaml").write_text(yaml.safe_dump(config))
    return {"queries": len(base), "extra": len(extra), "responses": len(base) * teachers * samples}


class RssSampler:
    """Peak RSS (this process + children) per asset, the asset named by the runner's log lines."""

    def __init__(self, interval: float = 0.05, list_children_every: float = 1.0):
        import psutil

        self.proc, self.interval = psutil.Process(), interval
        self.current: str | None = None
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        # listing children walks all of /proc holding the GIL: at every 50 ms sample, py-spy found ~30 s of
        # the 1M build's +1% step in it, taken from the build itself; own RSS is one /proc read
        self._children: list = []
        self._listed, self._list_every = float("-inf"), list_children_every

    def rss(self) -> int:
        total = self.proc.memory_info().rss
        if time.monotonic() - self._listed >= self._list_every:
            self._children, self._listed = self.proc.children(recursive=True), time.monotonic()
        for child in self._children:
            try:
                total += child.memory_info().rss
            except Exception:  # exited between listing and reading
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.current:
                self.peaks[self.current] = max(self.peaks.get(self.current, 0), self.rss())

    def log(self, line: str) -> None:
        m = re.match(r"\[(\w+)\]", line)
        if m:
            self.current = m.group(1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def delta_files(lake_root: Path) -> dict[str, tuple[int, int]]:
    """table -> (files in the current version, parquet files on disk incl. older versions)."""
    from deltalake import DeltaTable

    out = {}
    for d in sorted(p for p in lake_root.iterdir() if (p / "_delta_log").is_dir()):
        out[d.name] = (len(DeltaTable(str(d)).file_uris()), sum(1 for _ in d.rglob("*.parquet")))
    return out


def upstream_names(defs) -> list[str]:
    import dagster as dg

    graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.assets(TARGET_ASSET).upstream().resolve(graph)
    return sorted(k.to_user_string() for k in keys if graph.get(k).is_materializable)


def build(root: str, storage: str = "sqlite", parallel: int = 1) -> None:
    """Runs in a fresh process: first build, no-op re-run, +1% queries. `storage` postgres: the
    DAGSTER_PG_* environment reaches a server (main starts one)."""
    import dagster as dg

    from am_distill.cli.runner import materialize_all
    from definitions import build_defs
    from resources.instance import prepare_home

    # Dagster's per-step DEBUG lines would drown the figures (and cost time at 64 x T partitions)
    logging.getLogger("dagster").setLevel(logging.WARNING)
    root_p = Path(root)
    home = root_p / "dagster_home"
    os.environ["DAGSTER_HOME"] = str(home)
    if storage == "postgres":  # the production profile's storage block (am-distill deploy local)
        from resources.config import load_config
        from resources.deploy import instance_config

        profile = instance_config("local", load_config(root_p / "pipeline.yaml"))
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(yaml.safe_dump({k: profile[k] for k in ("storage", "telemetry")}))
    prepare_home(home, Path(__file__).resolve().parent.parent / "scripts" / "dagster.yaml")

    sampled: list[int] = []  # each pass's highest sampled RSS (process + children)

    def run(config: str, label: str) -> float:
        defs = build_defs(root_p / config)
        select = upstream_names(defs)
        with dg.DagsterInstance.get() as instance, RssSampler() as rss:
            start = time.perf_counter()
            report = materialize_all(defs, instance, select=select, log=rss.log, parallel=parallel)
            total = time.perf_counter() - start
        print(f"{label}: total {total:,.1f} s, {len(report.ran)} partitions ran", flush=True)
        for name in select:
            if name in report.seconds or name in rss.peaks:
                print(f"{label}: {name}: {report.seconds.get(name, 0.0):,.1f} s, {len(report.partitions(name))} "
                      f"partitions, peak RSS {rss.peaks.get(name, 0) / 2**20:,.0f} MiB", flush=True)
        sampled.append(max(rss.peaks.values(), default=0))
        reads = [m.get("responses_read", "") for (a, _), m in report.metadata.items() if a == "verification_outcomes"]
        mix = report.metadata.get(("training_mix", None), {})
        if reads or mix:
            how = f"appended {mix.get('appended_rows')} rows" if mix.get("appended") else "built whole"
            print(f"{label}: verification read only new files in {sum(r == 'new files only' for r in reads)} of "
                  f"{len(reads)} partitions; training_mix {how}", flush=True)
        return total

    first = run("pipeline.yaml", "first build")
    for table, (active, on_disk) in delta_files(root_p / "lake").items():
        print(f"Delta files: {table}: {active} in the current version, {on_disk} on disk", flush=True)
    noop = run("pipeline.yaml", "no-op re-run")
    print(f"no-op re-run (the build's last pass found everything fresh: runner.NoOpMarker): {noop:,.1f} s "
          "(target < 30 s)", flush=True)
    (home / ".am-distill-noop.json").unlink(missing_ok=True)  # what a changed-then-restored state costs
    noop = run("pipeline.yaml", "no-op, full check")
    print(f"no-op re-run with the full staleness check of every partition: {noop:,.1f} s", flush=True)
    (inside, ran), whole, _ = run_measured(noop_command, root)
    print(f"no-op as a new command (a fresh process, as each `am-distill materialize` is: the input files' "
          f"digests come from $AM_DISTILL_CACHE): {inside:,.1f} s, {ran} partitions ran ({whole:,.1f} s with "
          "the process start and imports)", flush=True)
    plus = run("pipeline_plus1.yaml", "+1% queries")
    print(f"+1% queries rebuild: {plus:,.1f} s = {100 * plus / first:.1f}% of the first build (target < 5%)",
          flush=True)
    print(f"overall peak RSS of the build process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:,.2f} GiB", flush=True)
    if parallel > 1:  # workers hold the partitions (getrusage's figure for children counts pages shared at fork)
        print(f"peak RSS of the process and its workers together (sampled): {max(sampled) / 2**30:,.2f} GiB",
              flush=True)


def noop_command(root: str) -> tuple[float, int]:
    """A fresh process's materialize of the built project: (seconds, partitions that ran)."""
    import dagster as dg

    from am_distill.cli.runner import materialize_all
    from definitions import build_defs

    logging.getLogger("dagster").setLevel(logging.WARNING)
    os.environ["DAGSTER_HOME"] = str(Path(root) / "dagster_home")
    defs = build_defs(Path(root) / "pipeline.yaml")
    with dg.DagsterInstance.get() as instance:
        start = time.perf_counter()
        report = materialize_all(defs, instance, select=upstream_names(defs), log=lambda m: None)
        return time.perf_counter() - start, len(report.ran)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--teachers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--semantic", action="store_true", help="semantic dedup on (embeds every query)")
    parser.add_argument("--embedder", choices=["model2vec", "sentence_transformers"], default="model2vec",
                        help="query_embeddings' embedder (MiniLM on 2 CPU cores: ~30-90 texts/s)")
    parser.add_argument("--keep", help="build in this folder and keep it (default: a temp folder)")
    parser.add_argument("--storage", choices=["sqlite", "postgres"], default="sqlite",
                        help="the Dagster instance's storage (postgres: a throwaway server, as in production)")
    parser.add_argument("--parallel", type=int, default=1, help="partitions of an asset run at once (worker processes)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="am-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        sizes = write_project(root, args.queries, args.teachers, args.samples, args.shards, args.semantic,
                              args.embedder)
        print(f"generated {sizes['queries']:,} queries (+{sizes['extra']:,} for the incremental step), "
              f"{sizes['responses']:,} responses, {args.shards} shards in {time.perf_counter() - start:,.1f} s",
              flush=True)
        with ExitStack() as stack:
            if args.storage == "postgres":
                from benchmarks.pg_server import postgres_server

                # its own folder: as root the server runs as `postgres`, which cannot enter a 0700 temp dir
                base = stack.enter_context(tempfile.TemporaryDirectory(prefix="am-pg-"))
                os.chmod(base, 0o755)
                os.environ.update(stack.enter_context(postgres_server(Path(base))))
            _, seconds, peak = run_measured(build, str(root), args.storage, args.parallel)
        print(f"benchmark process: {seconds:,.1f} s, peak RSS {peak / 2**30:,.2f} GiB", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
