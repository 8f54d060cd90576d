"""The production profile for real: a PostgreSQL server, `dagster-daemon` with the profile's instance
(`am-distill deploy local`), an asset backfill launched through GraphQL as the UI launches it.

Asserts that the queue's limits held (one run per partition, a teacher's `max_runs`, a shared pool's
bound), that a run whose worker is SIGKILLed is marked failed by run monitoring and retried, and that
the lake table holds every key once. The code location is tests/prod_defs.py (one small asset that
writes through the project's lake resource), so the test measures the instance, not model speed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from resources.config import load_config
from resources.deploy import render, write
from resources.lake import LakeResource
from tests.pg_server import postgres_server

pytest.importorskip("dagster_postgres", reason="the prod extra (make setup installs it)")

PROJECT_DIR = Path(__file__).resolve().parent.parent
PARTITIONS = [f"{s}|{t}" for t in ("t1", "t2") for s in ("s00", "s01")]
KILLED = "s01|t2"
CONFIG = """
shards: 3
teachers:
  - {name: t1, kind: import, path: t1.jsonl, pool: gpu_a, max_runs: 1}
  - {name: t2, kind: import, path: t2.jsonl, pool: gpu_a, max_runs: 2}
pools: {gpu_a: 2}
"""
BACKFILL = """
mutation($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
  }
}
"""


@pytest.fixture(scope="module")
def pg_env():
    # not pytest's tmp_path: as root the server runs as `postgres`, which cannot enter /tmp/pytest-of-root
    with tempfile.TemporaryDirectory(prefix="am-pg-") as base:
        os.chmod(base, 0o755)
        with postgres_server(Path(base)) as env:
            yield env


def pipeline(tmp: Path):
    for t in ("t1", "t2"):
        (tmp / f"{t}.jsonl").write_text("")
    (tmp / "pipeline.yaml").write_text(CONFIG)
    return load_config(tmp / "pipeline.yaml")


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def launch_backfill(context, partitions: list[str]) -> str:
    from dagster_graphql.test.utils import execute_dagster_graphql

    result = execute_dagster_graphql(context, BACKFILL, {"backfillParams": {
        "assetSelection": [{"path": ["verification_outcomes"]}], "partitionNames": partitions}})
    data = result.data["launchPartitionBackfill"]
    assert data["__typename"] == "LaunchBackfillSuccess", data
    return data["backfillId"]


def stop_daemon(daemon: subprocess.Popen) -> None:
    """Stop a dagster-daemon started in its own process group, and everything it started."""
    os.killpg(daemon.pid, signal.SIGTERM)
    try:
        daemon.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(daemon.pid, signal.SIGKILL)


def wait_for(what: str, predicate, timeout: float, daemon_log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; daemon log tail:\n{daemon_log.read_text()[-3000:]}")


def test_deploy_config_loads_against_postgres(pg_env, tmp_path, monkeypatch):
    """Both profiles' dagster.yaml load as a DagsterInstance on the test server; no secret in them."""
    cfg = pipeline(tmp_path)
    for name, value in pg_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "cli-home"))
    for profile in ("local", "ray"):
        home = tmp_path / profile
        if profile == "local":  # through the CLI, as a user does
            from am_distill.cli.main import main

            main(["-c", str(tmp_path / "pipeline.yaml"), "deploy", "local", "--write", str(home)])
        else:
            write(profile, cfg, PROJECT_DIR, home)
        text = (home / "dagster.yaml").read_text()
        assert pg_env["DAGSTER_PG_PASSWORD"] not in text and "DAGSTER_PG_PASSWORD" in text
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.run_coordinator).__name__ == "PoolRunCoordinator"
            assert type(instance.run_launcher).__name__ == {"local": "CheckedRunLauncher", "ray": "RayRunLauncher"}[profile]
            assert instance.run_monitoring_enabled and instance.run_retries_enabled
            limits = {(lim["key"], str(lim["value"])): lim["limit"]
                      for lim in instance.run_coordinator.get_run_queue_config().tag_concurrency_limits}
            assert limits[("dagster/partition/teacher", "t1")] == 1 and limits[("am-distill/pool", "gpu_a")] == 2
        workspace = yaml.safe_load((home / "workspace.yaml").read_text())
        assert Path(workspace["load_from"][0]["python_file"]["relative_path"]).is_file()
    assert render("ray", cfg, PROJECT_DIR)["dagster.yaml"].count("RAY_ADDRESS") >= 1


RAY_CONFIG = """
teachers:
  - {name: gpu, kind: vllm, tensor_parallel_size: 2}
  - {name: cpu, kind: vllm, ray: {num_cpus: 4, num_gpus: 0}}
  - {name: imp, kind: import, path: t1.jsonl}
ray:
  verification_outcomes: {num_cpus: 2, resources: {sandbox: 1}}
dedup: {embedder: {device: cuda}}
"""


def test_ray_requests_from_the_config_reach_the_run_tag(tmp_path, monkeypatch):
    """The `ray` profile's queue tags each run with its assets' Ray request; a vllm-cpu teacher asks for
    CPUs only (no GPU, so a CPU-only cluster schedules it). No server: SQLite storage, no cluster."""
    from dagster._core.utils import make_new_run_id

    from resources.deploy import instance_config

    (tmp_path / "t1.jsonl").write_text("")
    (tmp_path / "pipeline.yaml").write_text(RAY_CONFIG)
    cfg = load_config(tmp_path / "pipeline.yaml")
    (tmp_path / "default.yaml").write_text("teachers: [{name: cpu, kind: vllm}]\n")
    assert cfg.teacher("cpu").fingerprint() == load_config(tmp_path / "default.yaml").teacher("cpu").fingerprint()
    instance_yaml = {**instance_config("ray", cfg), "storage": {"sqlite": {"base_dir": str(tmp_path / "home")}}}
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml))
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    want = {("teacher_responses", "gpu"): {"num_gpus": 2}, ("teacher_responses", "cpu"): {"num_cpus": 4, "num_gpus": 0},
            ("teacher_responses", "imp"): None, ("verification_outcomes", "cpu"): {"num_cpus": 2, "resources": {"sandbox": 1}},
            ("query_embeddings", None): {"num_gpus": 1}}
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        for (asset, teacher), request in want.items():
            run = dg.DagsterRun(job_name="__ASSET_JOB", run_id=make_new_run_id(), asset_selection={dg.AssetKey(asset)},
                                tags={"dagster/partition/teacher": teacher} if teacher else {})
            tag = instance.run_coordinator.run_tags_for(run).get("dagster-ray/config")
            assert (json.loads(tag) if tag else None) == request, (asset, teacher)
    cpu_only = yaml.safe_load((tmp_path / "default.yaml").read_text())  # the default stays a GPU request
    cpu_only["teachers"][0]["ray"] = {"num_gpus": 0.5}
    (tmp_path / "half.yaml").write_text(yaml.safe_dump(cpu_only))
    assert load_config(tmp_path / "default.yaml").teachers[0].ray_request() == {"num_gpus": 1}
    assert load_config(tmp_path / "half.yaml").teachers[0].ray_request() == {"num_gpus": 0.5}


def test_daemon_queue_limits_kill_and_retry(pg_env, tmp_path, monkeypatch):
    cfg = pipeline(tmp_path)
    home, lake_root, markers = tmp_path / "home", tmp_path / "lake", tmp_path / "markers"
    markers.mkdir()
    write("local", cfg, PROJECT_DIR, home)
    instance_yaml = yaml.safe_load((home / "dagster.yaml").read_text())
    instance_yaml["run_monitoring"]["poll_interval_seconds"] = 1  # the profile's 5 s, shortened for the test
    instance_yaml["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_file": {
        "relative_path": str(PROJECT_DIR / "tests" / "prod_defs.py"), "working_directory": str(PROJECT_DIR),
        "location_name": "prod_test"}}]}))
    env = {**pg_env, "DAGSTER_HOME": str(home), "AM_PROD_LAKE": str(lake_root), "AM_PROD_HANG": KILLED,
           "AM_PROD_MARKERS": str(markers), "PYTHONPATH": str(PROJECT_DIR), "AM_PROD_SLEEP": "3"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    daemon_log = tmp_path / "daemon.log"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("teacher", ["t1", "t2"])
        with open(daemon_log, "w") as log:
            daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
                                      cwd=PROJECT_DIR, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        try:
            from dagster_graphql.test.utils import define_out_of_process_context

            with define_out_of_process_context(str(workspace), None, instance) as context:
                launch_backfill(context, PARTITIONS)
                launch_backfill(context, ["s00|t1"])  # the same partition again: must wait for the first
            pid = int(wait_for("the hanging run's pid", lambda: (markers / "t2-s01.pid").exists()
                               and (markers / "t2-s01.pid").read_text(), 120, daemon_log))
            os.kill(pid, signal.SIGKILL)

            def settled():
                records = instance.get_run_records()
                done = [r for r in records if r.dagster_run.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)]
                ok = {r.dagster_run.tags.get("dagster/partition") for r in done if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS}
                return records if len(done) == len(records) and ok >= set(PARTITIONS) and len(records) >= len(PARTITIONS) + 2 else None

            records = wait_for("every partition to succeed", settled, 150, daemon_log)
        finally:
            stop_daemon(daemon)

        runs = {r.dagster_run.run_id: r for r in records}
        killed = [r for r in records if r.dagster_run.tags.get("dagster/partition") == KILLED
                  and r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
        assert len(killed) == 1, [(r.dagster_run.tags.get("dagster/partition"), r.dagster_run.status) for r in records]
        messages = [e.message for e in instance.all_logs(killed[0].dagster_run.run_id)]
        # the code server saw its worker die (-9); were the code server gone too, run monitoring's
        # health check (test_health_check_fails_dead_worker) would find it
        assert any("terminated by signal 9" in m or "is gone" in m for m in messages), messages[5:]
        retries = [r for r in records if r.dagster_run.tags.get("dagster/parent_run_id") == killed[0].dagster_run.run_id]
        assert [r.dagster_run.status for r in retries] == [dg.DagsterRunStatus.SUCCESS]
        assert all(r.dagster_run.tags.get("am-distill/pool") == "gpu_a" for r in records)

        spans = {rid: (r.start_time, r.end_time) for rid, r in runs.items() if r.start_time and r.end_time}
        by = lambda f: [spans[rid] for rid, r in runs.items() if rid in spans and f(r.dagster_run.tags)]  # noqa: E731
        for part in PARTITIONS:
            assert max_overlap(by(lambda t, p=part: t.get("dagster/partition") == p)) == 1, part
        assert len(by(lambda t: t.get("dagster/partition") == "s00|t1")) == 2  # both s00|t1 runs ran, one after the other
        assert max_overlap(by(lambda t: t.get("dagster/partition/teacher") == "t1")) == 1
        overall = max_overlap(by(lambda t: True))
        assert overall == 2, [(r.create_timestamp, r.start_time, r.end_time) for r in records]  # the pool bound, reached

    table = LakeResource(root=str(lake_root)).read("outcomes")
    assert table.height == len(PARTITIONS) * 5
    assert table.select(["teacher", "shard", "item"]).is_duplicated().sum() == 0


def test_health_check_fails_dead_worker(pg_env, tmp_path, monkeypatch):
    """CheckedRunLauncher: a run whose logged worker pid is alive is RUNNING; once killed, FAILED."""
    from dagster._core.events import EngineEventData
    from dagster._core.launcher import WorkerStatus

    write("local", pipeline(tmp_path), PROJECT_DIR, tmp_path / "home")
    for name, value in pg_env.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        launcher = instance.run_launcher
        assert launcher.supports_check_run_worker_health
        run = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), run_id=None)
        assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING  # no pid logged yet
        worker = subprocess.Popen(["sleep", "60"])
        instance.report_engine_event(f"Started process for run (pid: {worker.pid}).", run,
                                     EngineEventData.in_process(worker.pid))
        result = launcher.check_run_worker_health(run)
        assert result.status == WorkerStatus.RUNNING and "not logged" not in (result.msg or "")
        worker.kill()
        worker.wait()
        result = launcher.check_run_worker_health(run)
        assert result.status == WorkerStatus.FAILED and str(worker.pid) in result.msg
