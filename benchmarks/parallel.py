"""verification_outcomes over 8 teacher x shard partitions with 1 worker vs N workers (`--parallel N`).

    .venv/bin/python -m benchmarks.parallel [--queries 4000] [--samples 4] [--workers 2] [--ray]

A benchmarks.scale project (2 import teachers x 4 shards, numeric answers) is built up to
teacher_responses once; then verification_outcomes is verified from scratch (its table removed, the
runs forced) through the runner with 1 worker and with N, and the seconds and the speed-up are
printed. The math verifier already spreads one partition over a process pool, so on a 2-core box
the gain from running partitions side by side is bounded by the cores the pool leaves idle.

`--ray` also runs the same 8 partitions on a local Ray cluster (`ray.cluster_utils.Cluster`: a head
that takes no runs and one worker node with this machine's cores) the production way: the `ray`
profile's instance (`am-distill deploy ray`, with SQLite storage instead of Postgres, as every node
shares this disk), `dagster-daemon`, an asset backfill launched through GraphQL as the UI does, each
run a Ray job (dagster-ray's RayRunLauncher) asking for the profile's 1 CPU. Timed from the backfill
launch to the last run's success, so it includes the daemon's ticks and each job's start.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.scale import write_project

PROJECT_DIR = Path(__file__).resolve().parent.parent
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


BACKFILL = """
mutation($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _verify_on_ray(root: Path, partitions: list[str]) -> float:
    """The partitions as Ray jobs through the daemon's queue (see the module docstring)."""
    import dagster as dg
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql
    from ray.cluster_utils import Cluster

    from resources.config import load_config
    from resources.deploy import instance_config, workspace_config
    from tests.test_production_profile import stop_daemon

    home, cfg_path = root / "ray-home", root / "pipeline.yaml"
    home.mkdir()
    instance = instance_config("ray", load_config(cfg_path))
    instance["storage"] = {"sqlite": {"base_dir": str(home)}}  # one machine: the nodes share this disk
    instance["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    # the project's definitions without sensors: the daemon runs only this backfill (the automation
    # sensor would otherwise launch runs of the rest of the graph on the cluster while it is timed)
    (root / "ray_defs.py").write_text("import dagster as dg\nimport definitions as full\n\n"
                                      "defs = dg.Definitions(assets=full.defs.assets, resources=full.defs.resources)\n")
    workspace = workspace_config(PROJECT_DIR)
    workspace["load_from"][0]["python_file"]["relative_path"] = str(root / "ray_defs.py")
    (home / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    dashboard = _free_port()
    # the daemon's environment reaches each Ray job (the profile's env_vars); the nodes need the venv's
    # bin/ on PATH for `dagster api execute_run` (docs/deploy.md)
    os.environ.update({"DAGSTER_HOME": str(home), "AM_DISTILL_CONFIG": str(cfg_path),
                       "RAY_ADDRESS": f"http://127.0.0.1:{dashboard}",
                       "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": True, "dashboard_port": dashboard})  # the head takes no runs
    cluster.add_node(num_cpus=os.cpu_count())
    cluster.wait_for_nodes()
    log = open(root / "daemon.log", "w")
    daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w",
                               str(home / "workspace.yaml")], cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        with dg.DagsterInstance.get() as inst:
            inst.add_dynamic_partitions("teacher", sorted({p.split("|")[1] for p in partitions}))
            with define_out_of_process_context(str(home / "workspace.yaml"), None, inst) as context:
                start, launched = time.perf_counter(), time.time()
                result = execute_dagster_graphql(context, BACKFILL, {"backfillParams": {
                    "assetSelection": [{"path": ["verification_outcomes"]}], "partitionNames": partitions}})
            data = result.data["launchPartitionBackfill"]
            if data["__typename"] != "LaunchBackfillSuccess":
                raise SystemExit(f"backfill not launched: {data}")
            while True:
                runs = [r for r in inst.get_runs() if dg.AssetKey("verification_outcomes") in (r.asset_selection or ())]
                if any(r.status == dg.DagsterRunStatus.FAILURE for r in runs):
                    raise SystemExit(f"a run failed on Ray; daemon log: {root / 'daemon.log'}\n"
                                     + (root / "daemon.log").read_text()[-3000:])
                done = {r.tags.get("dagster/partition") for r in runs if r.status == dg.DagsterRunStatus.SUCCESS}
                if done >= set(partitions):
                    break
                if time.perf_counter() - start > 1800:
                    raise SystemExit("the Ray runs did not finish in 30 min")
                time.sleep(0.5)
            seconds = time.perf_counter() - start
            requests = {r.tags.get("dagster-ray/config") for r in runs}
            # where the time goes: a run's life (Ray job start, `dagster api execute_run` loading the
            # definitions, the step) against the verification step alone
            records = inst.get_run_records()
            lives = [r.end_time - r.start_time for r in records if r.start_time and r.end_time]
            steps = [st.end_time - st.start_time for r in runs for st in inst.get_run_step_stats(r.run_id)
                     if st.start_time and st.end_time]
            first = min(r.create_timestamp.timestamp() for r in records)
            first_start = min(r.start_time for r in records if r.start_time)
    finally:
        stop_daemon(daemon)
        log.close()
        cluster.shutdown()
    print(f"parallel: verification_outcomes, {len(partitions)} partitions, Ray cluster (1 worker node, "
          f"{os.cpu_count()} CPUs; runs ask {', '.join(sorted(map(str, requests)))}): {seconds:.1f} s")
    print(f"parallel: Ray runs: {sum(lives) / len(lives):.1f} s per run start to end, of which the verification "
          f"step {sum(steps) / max(len(steps), 1):.1f} s; first run created {first - launched:.1f} s after the backfill "
          f"launch and started {first_start - first:.1f} s after that")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=4000)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ray", action="store_true", help="also on a local Ray cluster (the `ray` profile)")
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
        if args.ray:
            shutil.rmtree(root / "lake" / "verification_outcomes", ignore_errors=True)
            partitions = [f"s{s:02d}|t{t}" for t in range(2) for s in range(4)]
            on_ray = _verify_on_ray(root, partitions)
    responses = args.queries * 2 * args.samples
    print(f"parallel: {responses:,} responses; speed-up with {args.workers} workers: {one / many:.2f}x")
    if args.ray:
        print(f"parallel: speed-up on the Ray cluster vs 1 local worker: {one / on_ray:.2f}x")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"parallel: load average {load} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
