"""The UI: `dagster dev` serves the code location; one teacher partition launched through the
webserver's GraphQL API (as the UI's Materialize button does) succeeds and writes only that partition;
headless Chromium renders the asset graph; and with the sensors on, a new or edited source is ingested
by the automation sensor without any launch by hand."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DagsterDev:
    def __init__(self, config: Path, home: Path, **env):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, AM_DISTILL_CONFIG=str(config), DAGSTER_HOME=str(home), **env)
        exe = Path(sys.executable).parent / "dagster"
        self.log = open(home / "dagster-dev.log", "w")
        self.proc = subprocess.Popen(
            [str(exe), "dev", "-w", str(PROJECT_DIR / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=PROJECT_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout=240):
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, "dagster dev exited; see dagster-dev.log"
            try:
                data = self.gql("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }")
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    return
            except (requests.ConnectionError, KeyError, TypeError):
                pass
            time.sleep(2)
        raise TimeoutError("dagster dev did not load the code location in time")

    def gql(self, query, variables=None):
        r = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
        r.raise_for_status()
        return r.json()["data"]

    def launch(self, asset: str, partition: str, **dimensions: str) -> str:
        # the UI's tags: the partition key, and one tag per dimension of a multi-partition key
        tags = [{"key": "dagster/partition", "value": partition}]
        tags += [{"key": f"dagster/partition/{dim}", "value": key} for dim, key in dimensions.items()]
        params = {
            "selector": {"repositoryLocationName": "am_distill", "repositoryName": "__repository__",
                         "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": [asset]}], "assetCheckSelection": []},
            "mode": "default",
            "executionMetadata": {"tags": tags},
            "runConfigData": {},
        }
        out = self.gql(LAUNCH, {"params": params})["launchPipelineExecution"]
        assert out["__typename"] == "LaunchRunSuccess", out
        return out["run"]["runId"]

    def wait_run(self, run_id, timeout=600) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status = self.gql(STATUS, {"id": run_id})["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(2)
        raise TimeoutError(f"run {run_id} did not finish")

    def stop(self):
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            # `dagster dev` outlives a SIGTERM to its group by more than 30 s (measured); the runs are over
            self.proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


TEACHER = {"name": "t1", "kind": "vllm", "model": "smollm2-135m", "kv_cache_gib": 1,
           "sampling": {"n": 1, "max_tokens": 8}}
SOURCE = {"name": "rg", "kind": "reasoning_gym", "datasets": ["basic_arithmetic"], "count": 5}


@pytest.fixture
def dagster_home(tmp_path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_DIR / "scripts" / "dagster.yaml").read_text())
    return home


@pytest.fixture
def start_dagster_dev(project, dagster_home):
    servers = []

    def start(**env) -> DagsterDev:
        servers.append(DagsterDev(project.config_path, dagster_home, **env))
        servers[-1].wait_ready()
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _instance(home: Path):
    import dagster as dg

    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def test_launch_one_teacher_partition_through_graphql_and_screenshot(project, dagster_home, start_dagster_dev):
    import dagster as dg

    from am_assets.distill.logic import eligible_queries
    from am_distill.cli.runner import materialize_all

    project.write({"shards": 2, "sources": [SOURCE], "teachers": [TEACHER]})
    defs = project.defs()
    upstream = [k.to_user_string() for k in dg.AssetSelection.assets("unique_queries").upstream()
                .resolve(defs.resolve_asset_graph())]
    with _instance(dagster_home) as instance:  # the queries exist; no teacher has run yet
        materialize_all(defs, instance, select=upstream, log=lambda *_: None)

    server = start_dagster_dev(AM_DISTILL_AUTOMATION="off")  # only what the test launches runs
    run_id = server.launch("teacher_responses", "s00|t1", shard="s00", teacher="t1")
    # well under the minutes a step subprocess would wait at exit for an engine it did not release
    assert server.wait_run(run_id, timeout=240) == "SUCCESS", (dagster_home / "dagster-dev.log").read_text()[-3000:]
    lake = project.lake()
    responses = lake.read("teacher_responses")
    assert responses.height == eligible_queries(lake.read("unique_queries", {"shard": "s00"})).height > 0
    assert set(responses["shard"]) == {"s00"} and set(responses["teacher"]) == {"t1"}
    with _instance(dagster_home) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("teacher_responses"))
        assert event.run_id == run_id and event.dagster_event.partition == "s00|t1"

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian package `chromium`; scripts/bootstrap.sh installs it as root)")
    shot = dagster_home.parent / "asset-graph.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={dagster_home.parent / 'chrome'}", "--window-size=1400,900",
                    "--virtual-time-budget=20000", f"--screenshot={shot}", f"{server.url}/asset-groups"],
                   check=True, timeout=180, capture_output=True)
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
    if os.environ.get("AM_DISTILL_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["AM_DISTILL_KEEP_SCREENSHOT"])


def _wait_for(predicate, timeout=300, what=""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(3)
    raise TimeoutError(f"timed out waiting for {what}")


def test_sensors_and_automation_ingest_a_new_source_and_reingest_an_edited_one(project, dagster_home,
                                                                               start_dagster_dev):
    """No launch by hand: the source sensor registers the partition, the automation sensor (running by
    default, evaluated in the code server) ingests it, and re-ingests it after its config is edited."""
    import dagster as dg

    project.write({"shards": 2, "sources": [SOURCE]})
    start_dagster_dev()  # automation on, as by default
    lake = project.lake()

    def raw_rows() -> int:
        return lake.read("raw_queries", {"source": "rg"}).height if lake.exists("raw_queries") else 0

    _wait_for(lambda: raw_rows() == 5, what="automation to ingest the new source")
    with _instance(dagster_home) as instance:
        assert instance.get_dynamic_partitions("source") == ["rg"]
        run = instance.get_run_by_id(instance.get_latest_materialization_event(dg.AssetKey("raw_queries")).run_id)
        assert run.tags["dagster/sensor_name"] == "automation"

    config = yaml.safe_load(project.config_path.read_text())
    config["sources"][0]["count"] = 6  # an edited source: a new observed version, so the partition is stale
    project.write(config)
    _wait_for(lambda: raw_rows() == 6, what="automation to re-ingest the edited source")
