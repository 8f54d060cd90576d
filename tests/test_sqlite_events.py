"""resources/dagster_internals.py (FastSqliteEventLogStorage): the runner's faster SQLite event log writes what Dagster's own class
writes (same run files, same schema and alembic stamp), and other processes read it with that class."""

import sqlite3

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from resources.dagster_internals import FastSqliteEventLogStorage, speed_up

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
        runs = [dg.materialize([numbers], partition_key=pk, instance=instance).run_id for pk in ("a", "b", "b")]

    runs_dir = home / "history" / "runs"
    # the instance closed its connections when disposed: SQLite checkpoints and removes each WAL file
    assert not [p.name for p in runs_dir.glob("*.db-wal") if p.name.split(".")[0] in runs]
    reference = _schema(runs_dir / f"{before.run_id}.db")
    assert reference[1], "Dagster stamps a run file with its alembic revision"
    for run_id in runs:  # each new run file: Dagster's tables, indexes and revision
        assert _schema(runs_dir / f"{run_id}.db") == reference

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as reader:  # Dagster's own class reads them
        assert type(reader.event_log_storage) is SqliteEventLogStorage
        mats = reader.fetch_materializations(dg.AssetKey("numbers"), limit=10).records
        assert sorted(r.run_id for r in mats) == sorted([before.run_id, *runs])
        assert sorted(r.partition_key for r in mats) == ["a", "a", "b", "b"]
        for run_id in runs:
            logs = [e.user_message for e in reader.all_logs(run_id) if not e.is_dagster_event]
            assert any(m.startswith("partition ") for m in logs)
            assert reader.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS


def test_other_storages_are_left_alone():
    with dg.DagsterInstance.ephemeral() as instance:  # in-memory event log: not Dagster's SQLite class
        kind = type(instance.event_log_storage)
        speed_up(instance)
        assert type(instance.event_log_storage) is kind is not FastSqliteEventLogStorage


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
