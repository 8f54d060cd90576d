"""Partitions on a Ray cluster through dagster-ray: a local multi-node cluster (a head that takes no
runs and two 1-CPU worker nodes, `ray.cluster_utils.Cluster`), a PostgreSQL instance from
`am-distill deploy ray`, `dagster-daemon`, and an asset backfill launched through GraphQL as the UI does.

Each run is a Ray job (RayRunLauncher) asking for the profile's per-asset resources (verification: 1
CPU), so two partitions run at once, one per worker node. The worker node holding one run is removed
mid-run: run monitoring sees the Ray job fail, marks the run failed, run retries run it again on the
node left. The table equals a sequential in-process build and holds each key once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import dagster as dg
import pytest
import yaml

from resources.lake import LakeResource, content_hash
from tests.pg_server import free_port, postgres_server
from tests.test_production_profile import PROJECT_DIR, launch_backfill, max_overlap, pipeline, stop_daemon, wait_for

pytest.importorskip("dagster_ray", reason="the prod extra (make setup installs it)")
pytest.importorskip("dagster_postgres", reason="the prod extra (make setup installs it)")

PARTITIONS = [f"{s}|{t}" for t in ("t1", "t2") for s in ("s00", "s01")]
KILLED = "s01|t1"
DETERMINISTIC = ["teacher", "shard", "item", "passed"]


def _ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return seen


@pytest.fixture
def ray_cluster(monkeypatch):
    from ray.cluster_utils import Cluster

    # a run's Ray job starts `dagster api execute_run`: the nodes need the venv on PATH, as a user's
    # `ray start` from an activated venv has it (docs/deploy.md)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    dashboard = free_port()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": True, "dashboard_port": dashboard})  # the head takes no runs
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        yield cluster, workers, f"http://127.0.0.1:{dashboard}"
    finally:
        cluster.shutdown()


def test_backfill_on_ray_cluster_with_a_lost_node(ray_cluster, tmp_path, monkeypatch):
    cluster, workers, address = ray_cluster
    cfg = pipeline(tmp_path)
    home, lake_root, markers = tmp_path / "home", tmp_path / "lake", tmp_path / "markers"
    markers.mkdir()
    test_env = {"AM_PROD_LAKE": str(lake_root), "AM_PROD_HANG": KILLED, "AM_PROD_MARKERS": str(markers),
                "AM_PROD_SLEEP": "2", "PYTHONPATH": str(PROJECT_DIR), "RAY_ADDRESS": address}
    with tempfile.TemporaryDirectory(prefix="am-pg-") as base:
        os.chmod(base, 0o755)
        with postgres_server(Path(base)) as pg_env:
            from resources.deploy import write

            write("ray", cfg, PROJECT_DIR, home)
            instance_yaml = yaml.safe_load((home / "dagster.yaml").read_text())
            instance_yaml["run_monitoring"]["poll_interval_seconds"] = 1  # shortened for the test
            # a retry's Ray job placed on the lost node before Ray notices the loss never starts its run:
            # Dagster fails a STARTING run only on this timeout (no health check before the run starts)
            instance_yaml["run_monitoring"]["start_timeout_seconds"] = 30
            instance_yaml["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
            assert instance_yaml["run_coordinator"]["config"]["ray_requests"]["verification_outcomes"] == {"num_cpus": 1}
            instance_yaml["run_launcher"]["config"]["ray"]["env_vars"] += sorted(test_env)
            (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml))
            workspace = tmp_path / "workspace.yaml"
            workspace.write_text(yaml.safe_dump({"load_from": [{"python_file": {
                "relative_path": str(PROJECT_DIR / "tests" / "prod_defs.py"), "working_directory": str(PROJECT_DIR),
                "location_name": "prod_test"}}]}))
            env = {**pg_env, **test_env, "DAGSTER_HOME": str(home)}
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            records = _run_backfill(home, workspace, markers, workers, cluster, tmp_path / "daemon.log")

    runs = {r.dagster_run.run_id: r for r in records}
    killed = [r for r in records if r.dagster_run.tags.get("dagster/partition") == KILLED
              and r.dagster_run.status == dg.DagsterRunStatus.FAILURE and "dagster/root_run_id" not in r.dagster_run.tags]
    assert len(killed) == 1
    # retried (a retry placed on the lost node before Ray noticed may time out and be retried again)
    retried = sorted((r for r in records if r.dagster_run.tags.get("dagster/root_run_id") == killed[0].dagster_run.run_id),
                     key=lambda r: r.create_timestamp)
    assert retried and retried[-1].dagster_run.status == dg.DagsterRunStatus.SUCCESS
    assert all(json.loads(r.dagster_run.tags["dagster-ray/config"]) == {"num_cpus": 1} for r in records)
    spans = [(r.start_time, r.end_time) for r in runs.values() if r.start_time and r.end_time]
    assert max_overlap(spans) == 2  # two nodes, two runs at once

    table = LakeResource(root=str(lake_root)).read("outcomes")
    assert table.select(["teacher", "shard", "item"]).is_duplicated().sum() == 0
    sequential = _sequential_build(tmp_path / "sequential", monkeypatch)
    assert content_hash(table.select(DETERMINISTIC)) == content_hash(sequential.select(DETERMINISTIC))


def _run_backfill(home, workspace, markers, workers, cluster, daemon_log: Path):
    from dagster_graphql.test.utils import define_out_of_process_context

    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("teacher", ["t1", "t2"])
        with open(daemon_log, "w") as log:
            daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
                                      cwd=PROJECT_DIR, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        try:
            with define_out_of_process_context(str(workspace), None, instance) as context:
                launch_backfill(context, PARTITIONS)
            marker = markers / "t1-s01.pid"
            try:
                pid = int(wait_for("the hanging run on a Ray node", lambda: marker.exists() and marker.read_text(), 120,
                                   daemon_log))
            except AssertionError as e:
                raise AssertionError(f"{e}\nRay jobs:\n{_ray_jobs(os.environ['RAY_ADDRESS'])}") from None
            chain = _ancestors(pid)
            node = next(n for n in workers if n.all_processes["raylet"][0].process.pid in chain)
            cluster.remove_node(node, allow_graceful=False)  # the node is lost with the run on it
            try:
                os.kill(pid, signal.SIGKILL)  # and every process on it (Ray may leave the job's driver behind)
            except ProcessLookupError:
                pass

            def settled():
                records = instance.get_run_records()
                done = [r for r in records if r.dagster_run.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)]
                ok = {r.dagster_run.tags.get("dagster/partition") for r in done if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS}
                return records if len(done) == len(records) and ok >= set(PARTITIONS) else None

            try:
                return wait_for("every partition to succeed on the cluster", settled, 120, daemon_log)
            except AssertionError as e:
                status = [(r.dagster_run.run_id[:8], r.dagster_run.status.value) for r in instance.get_run_records()]
                raise AssertionError(f"{str(e)[-600:]}\nruns {status}\nRay jobs:\n{_ray_jobs(os.environ['RAY_ADDRESS'])}") from None
        finally:
            stop_daemon(daemon)


def _ray_jobs(address: str) -> str:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)

    def logs(job_id):
        try:
            return client.get_job_logs(job_id)[-400:]
        except Exception as e:  # a job of a removed node
            return f"(no logs: {str(e)[:80]})"

    return "\n".join(f"{j.submission_id} {j.status} {(j.message or '')[:200]}\n{logs(j.submission_id)}"
                     for j in client.list_jobs())


def _sequential_build(root: Path, monkeypatch):
    """The same partitions, one after the other, in this process (no queue, no Ray)."""
    monkeypatch.setenv("AM_PROD_LAKE", str(root))
    monkeypatch.setenv("AM_PROD_SLEEP", "0")
    monkeypatch.delenv("AM_PROD_HANG")
    from tests import prod_defs

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("teacher", ["t1", "t2"])
        for key in PARTITIONS:
            assert dg.materialize([prod_defs.verification_outcomes], partition_key=key, instance=instance,
                                  resources={"lake": LakeResource(root=str(root))}).success
    return LakeResource(root=str(root)).read("outcomes")
