"""resources/dagster_internals.py (FastSqliteEventLogStorage, FastSqliteRunStorage): the runner's faster SQLite event
log and run storage write what Dagster's own classes write (same run files, same schema and alembic stamp), and
other processes read them with those classes."""

import sqlite3

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

from resources.dagster_internals import FastSqliteEventLogStorage, FastSqliteRunStorage, speed_up

PARTS = dg.StaticPartitionsDefinition(["a", "b"])


@dg.asset(partitions_def=PARTS)
def numbers(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    context.log.info(f"partition {context.partition_key}")
    return dg.MaterializeResult(metadata={"key": context.partition_key})


def _schema(path) -> tuple[list, list]:
    with sqlite3.connect(path) as conn:
        tables = sorted(conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
        return tables, conn.execute("SELECT version_num FROM alembic_version").fetchall()


def test_fast_event_log_writes_what_dagster_reads(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as plain:
        assert type(plain.event_log_storage) is SqliteEventLogStorage
        before = dg.materialize([numbers], partition_key="a", instance=plain)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        speed_up(instance)
        assert type(instance.event_log_storage) is FastSqliteEventLogStorage
        assert type(instance.run_storage) is FastSqliteRunStorage
        runs = [dg.materialize([numbers], partition_key=pk, instance=instance).run_id for pk in ("a", "b", "b")]
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as rival:  # another process, meanwhile
            assert rival.get_run_by_id(runs[-1]).status == dg.DagsterRunStatus.SUCCESS
            rival_run = dg.materialize([numbers], partition_key="a", instance=rival).run_id
        assert instance.get_run_by_id(rival_run).status == dg.DagsterRunStatus.SUCCESS  # seen by the kept connection
        assert {r.run_id for r in instance.get_runs()} == {before.run_id, rival_run, *runs}

    runs_dir = home / "history" / "runs"
    # the instance closed its connections when disposed: SQLite checkpoints and removes each WAL file
    assert not [p.name for p in runs_dir.glob("*.db-wal") if p.name.split(".")[0] in runs]
    assert not (home / "history" / "runs.db-wal").exists()
    reference = _schema(runs_dir / f"{before.run_id}.db")
    assert reference[1], "Dagster stamps a run file with its alembic revision"
    for run_id in runs:  # each new run file: Dagster's tables, indexes and revision
        assert _schema(runs_dir / f"{run_id}.db") == reference

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as reader:  # Dagster's own class reads them
        assert type(reader.event_log_storage) is SqliteEventLogStorage
        assert type(reader.run_storage) is SqliteRunStorage
        mats = reader.fetch_materializations(dg.AssetKey("numbers"), limit=10).records
        assert sorted(r.run_id for r in mats) == sorted([before.run_id, rival_run, *runs])
        assert sorted(r.partition_key for r in mats) == ["a", "a", "a", "b", "b"]
        for run_id in runs:
            logs = [e.user_message for e in reader.all_logs(run_id) if not e.is_dagster_event]
            assert any(m.startswith("partition ") for m in logs)
            assert reader.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS


def test_other_storages_are_left_alone():
    with dg.DagsterInstance.ephemeral() as instance:  # in-memory event log: not Dagster's SQLite class
        kind, runs = type(instance.event_log_storage), type(instance.run_storage)
        speed_up(instance)
        assert type(instance.event_log_storage) is kind is not FastSqliteEventLogStorage
        assert type(instance.run_storage) is runs is not FastSqliteRunStorage


def test_a_new_run_file_is_the_stamped_template_and_a_rivals_file_stays(tmp_path):
    from resources.dagster_internals import _copy_template

    fresh = tmp_path / "fresh.db"
    _copy_template(str(fresh))
    with sqlite3.connect(fresh) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # WAL, as Dagster sets it
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall()  # stamped: no migration runs
        assert conn.execute("SELECT count(*) FROM event_logs").fetchone()[0] == 0
    rival = tmp_path / "rival.db"
    rival.write_bytes(b"a rival process's file")
    _copy_template(str(rival))
    assert rival.read_bytes() == b"a rival process's file"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]  # no half copies left


_STEP_PRINTS = r'''
import os, sys
import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.instance.ref import InstanceRef
from resources.dagster_internals import FastLocalComputeLogManager, speed_up

@dg.asset
def chatty():
    print("stdout line from the step", flush=True)
    os.write(2, b"stderr bytes from the step\n")  # below Python's streams, as a library's C code writes

if __name__ == "__main__":
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(os.environ["DAGSTER_HOME"])) as instance:
        speed_up(instance)
        assert type(instance.compute_log_manager) is FastLocalComputeLogManager
        run_id = dg.materialize([chatty], instance=instance).run_id
        [event] = instance.all_logs(run_id, of_type=DagsterEventType.LOGS_CAPTURED)
        file_key = event.dagster_event.event_specific_data.file_key
        key = instance.compute_log_manager.build_log_key_for_run(run_id, file_key)
        data = instance.compute_log_manager.get_log_data(key)
        assert instance.compute_log_manager.is_capture_complete(key)
        print("CAPTURED", repr(data.stdout), repr(data.stderr))
'''


def test_fast_compute_logs_capture_a_step_and_mirror_it_to_the_terminal(tmp_path):
    """FastLocalComputeLogManager: the step's stdout and stderr (Python's and the file descriptors')
    land in Dagster's log files, and reach the terminal as they did through `tail -F`."""
    import os
    import subprocess
    import sys

    script = tmp_path / "chatty.py"
    script.write_text(_STEP_PRINTS)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    captured = next(line for line in done.stdout.splitlines() if line.startswith("CAPTURED"))
    assert "stdout line from the step" in captured and "stderr bytes from the step" in captured
    # the mirror: printed inside the step, shown on the process's own streams too
    assert "stdout line from the step" in done.stdout.replace(captured, "")
    assert "stderr bytes from the step" in done.stderr
