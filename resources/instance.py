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
import os
import random
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

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
