"""The project-local Dagster instance when several `am-distill` processes share it.

- `prepare_home`: creating the SQLite instance is not safe from two processes at once (measured: one
  of them dies with `table snapshots already exists` or `UNIQUE constraint failed: alembic_version`),
  so the first creation runs under a file lock inside DAGSTER_HOME. The SQLite instance is
  machine-local anyway; a Postgres instance (production profile) does not need this.
- `add_partitions`: Dagster registers dynamic partitions by check-then-insert, so two processes
  adding the same key at once make one fail with a UNIQUE constraint error (measured); retried here.
- `run_tags` / `fail_dead_runs`: an in-process run killed with its process (SIGKILL, OOM) stays
  STARTED forever. Dagster's run monitoring cannot see it: the daemon only health-checks runs of
  launchers that support it (not DefaultRunLauncher, and in-process runs have no launcher). So each
  runner run records its process (host, pid, start time) in tags, and the next runner marks runs
  whose process is gone as FAILED.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import dagster as dg

PID_TAG = "am-distill/pid"
HOST_TAG = "am-distill/host"
START_TAG = "am-distill/process-start"
_READY = ".am-distill-instance-ready"
_UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


@contextmanager
def file_lock(path: Path | str) -> Iterator[None]:
    """An exclusive flock on `path` (created if missing): serializes processes of this machine."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prepare_home(home: Path, template: Path) -> None:
    """Make DAGSTER_HOME usable: dagster.yaml in place and the SQLite schema created, once."""
    home.mkdir(parents=True, exist_ok=True)
    if (home / _READY).exists():
        return
    with file_lock(home / ".am-distill-init.lock"):
        if (home / _READY).exists():  # another process finished it while this one waited
            return
        config = home / "dagster.yaml"
        if not config.exists():  # written whole, then renamed: a reader never sees half a file
            tmp = home / f".dagster.yaml.{os.getpid()}"
            tmp.write_text(template.read_text())
            tmp.replace(config)
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                instance.get_runs(limit=1)  # run, event log and schedule storages exist now
        except Exception as e:
            raise SystemExit(f"could not create the Dagster instance in {home} (DAGSTER_HOME): "
                             f"{type(e).__name__}: {e}") from e
        (home / _READY).write_text("created by am-distill\n")


def add_partitions(instance: dg.DagsterInstance, name: str, keys: list[str]) -> list[str]:
    """Register the dynamic partitions of `keys` not registered yet; returns those this call added."""
    from sqlalchemy.exc import IntegrityError

    for attempt in range(5):
        have = set(instance.get_dynamic_partitions(name))
        new = [k for k in dict.fromkeys(keys) if k not in have]
        if not new:
            return []
        try:
            instance.add_dynamic_partitions(name, new)
            return new
        except IntegrityError:  # another process added some of them meanwhile: look again
            time.sleep(random.uniform(0, 0.1 * (attempt + 1)))
    raise RuntimeError(f"could not register {name} partitions {keys}: other processes kept adding them")


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may contain spaces


def run_tags() -> dict[str, str]:
    """Tags that tie a run to this process, for `fail_dead_runs`."""
    pid = os.getpid()
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(), START_TAG: _process_start(pid) or ""}


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        pass
    now = _process_start(pid)
    return not (start and now and now != start)  # same pid, other start time: reused, ours is gone


def fail_dead_runs(instance: dg.DagsterInstance, log: Callable[[str], None] = print) -> list[str]:
    """Mark unfinished runs of this host whose runner process is dead as FAILED; returns their ids."""
    host = socket.gethostname()
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=_UNFINISHED, tags={HOST_TAG: host}))
    failed = []
    for record in records:
        run = record.dagster_run
        pid = int(run.tags.get(PID_TAG) or 0)
        if not pid or pid == os.getpid() or _alive(pid, run.tags.get(START_TAG, "")):
            continue
        instance.report_run_failed(run, f"the process that ran this run (pid {pid} on {host}) ended without "
                                        "finishing it (killed?); marked failed by the next am-distill runner")
        failed.append(run.run_id)
        log(f"run {run.run_id} ({run.job_name}) was left {run.status.value} by dead process {pid}: marked FAILED")
    return failed


# ---------------------------------------------------------------- production profile (daemon + queue)

POOL_TAG = "am-distill/pool"
RAY_TAG = "dagster-ray/config"  # dagster_ray.configs.USER_DEFINED_RAY_KEY
TEACHER_TAG = "dagster/partition/teacher"  # Dagster tags each run with its partition key per dimension


def _queued_run_coordinator():
    from resources.dagster_internals import QueuedRunCoordinator  # not re-exported by `dagster`

    return QueuedRunCoordinator


def _default_run_launcher():
    from resources.dagster_internals import DefaultRunLauncher

    return DefaultRunLauncher


class PoolRunCoordinator(_queued_run_coordinator()):
    """Dagster's run queue, plus a pool tag on each teacher's runs (`teacher_pools`: teacher -> pool).

    Tag concurrency limits only see run tags, and a run of teacher_responses[s00|t1] carries its
    teacher but not the GPU pool or endpoint that teacher uses; several teachers may share one. So
    the pool is tagged here, at submission (the UI, backfills, sensors and retries all submit through
    the coordinator), and a `tag_concurrency_limits` entry on POOL_TAG bounds it.

    With `ray_requests` (asset or `asset:teacher` -> Ray resources) it also sets the run's
    `dagster-ray/config` tag, which dagster-ray's RayRunLauncher reads: a run asks the Ray cluster
    for what its assets need (a vLLM teacher's GPUs, CPUs for verification), whoever launched it.
    """

    _teacher_pools: dict[str, str] = {}
    _ray_requests: dict[str, dict] = {}

    @classmethod
    def config_type(cls):
        return {**super().config_type(), "teacher_pools": dg.Field(dg.Permissive(), is_required=False),
                "ray_requests": dg.Field(dg.Permissive(), is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        coordinator = super().from_config_value(inst_data, config_value)
        coordinator._teacher_pools = {str(k): str(v) for k, v in (config_value.get("teacher_pools") or {}).items()}
        coordinator._ray_requests = dict(config_value.get("ray_requests") or {})
        return coordinator

    def run_tags_for(self, run) -> dict[str, str]:
        """The tags this coordinator adds to a run (pool, Ray resources)."""
        teacher = run.tags.get(TEACHER_TAG, "")
        tags = {POOL_TAG: self._teacher_pools[teacher]} if teacher in self._teacher_pools else {}
        assets = [k.to_user_string() for k in (run.asset_selection or [])]
        wanted: dict[str, Any] = {}
        for name in assets + [f"{a}:{teacher}" for a in assets]:
            for field, amount in self._ray_requests.get(name, {}).items():  # the largest request per field
                if isinstance(amount, dict):  # custom resources: the largest per resource
                    have = wanted.setdefault(field, {})
                    have.update({k: max(have.get(k, 0), v) for k, v in amount.items()})
                else:
                    wanted[field] = max(wanted.get(field, 0), amount)
        if wanted and RAY_TAG not in run.tags:  # a run's own dagster-ray/config wins
            tags[RAY_TAG] = json.dumps(wanted, sort_keys=True)
        return {k: v for k, v in tags.items() if run.tags.get(k) != v}

    def submit_run(self, context):
        from resources.dagster_internals import SubmitRunContext

        tags = self.run_tags_for(context.dagster_run)
        if tags:
            self._instance.add_run_tags(context.dagster_run.run_id, tags)
            context = SubmitRunContext(self._instance.get_run_by_id(context.dagster_run.run_id), context.workspace)
        return super().submit_run(context)


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, when logged) of a run's worker process, from the engine event it logs when it starts."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
    for record in reversed(records):  # the latest worker (a resumed run has several)
        entry = record.event_log_entry
        if entry.dagster_event and (entry.dagster_event.message or "").startswith("Started process for"):
            pid = entry.dagster_event.engine_event_data.metadata.get("pid")
            if pid is not None:
                return int(pid.value), entry.timestamp
    return None


class CheckedRunLauncher(_default_run_launcher()):
    """Dagster's default launcher (a worker process per run, started by the code server) with the
    health check it lacks, so run monitoring fails a run whose worker was killed (SIGKILL, OOM)
    instead of leaving it STARTED forever, and run retries then launch it again.

    The worker logs its pid when it starts; it runs on this host (the code server is the daemon's).
    A pid reused by a later process is told apart by its start time (after the worker's event).
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def launch_run(self, context) -> None:
        self._instance.add_run_tags(context.dagster_run.run_id, {HOST_TAG: socket.gethostname()})
        super().launch_run(context)

    def check_run_worker_health(self, run):
        from resources.dagster_internals import CheckRunHealthResult, WorkerStatus

        if run.tags.get(HOST_TAG, socket.gethostname()) != socket.gethostname():
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run worker is on another host")
        found = worker_pid(self._instance, run.run_id)
        if found is None:  # STARTED is reported after the pid, so this is a race at most: not a failure
            return CheckRunHealthResult(WorkerStatus.RUNNING, "worker pid not logged yet")
        pid, logged_at = found
        started = _started_at(pid)
        if started is not None and started <= logged_at + 1.0:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} is gone (killed?)")


def _started_at(pid: int) -> float | None:
    """When a live process started (epoch seconds), None when there is no such process (Linux)."""
    ticks = _process_start(pid)
    if ticks is None:
        return None
    btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                 if line.startswith("btime "))
    return btime + int(ticks) / os.sysconf("SC_CLK_TCK")
