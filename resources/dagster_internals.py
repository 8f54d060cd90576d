"""The one place that imports Dagster internals (`dagster._...`): what Dagster 1.13 exports no public API for.

- Staleness (MISSING / STALE / FRESH and its causes), as the UI computes it: the CLI runner's "skip
  fresh partitions" and the automation condition that reacts to changed observable sources
  (reference/dagster.md section 3: `CachingStaleStatusResolver` with a test loading context).
- The run coordinator and launcher base classes of the production profile (resources/instance.py).
- FastSqliteEventLogStorage / FastSqliteRunStorage / FastLocalComputeLogManager / `speed_up`: the
  embedded instance's SQLite event log, run storage and step log capture minus their per-run costs,
  for the runner's own runs (below).

Everything else uses `dagster`'s public names. tests/test_layers.py fails when any other module imports
`dagster._`, and tests/test_dagster_adapter.py fails loudly on a Dagster version other than the one
these were checked against (pyproject.toml pins it): re-check each name below, then update both.
"""

from __future__ import annotations

import inspect
import os
import sqlite3
import sys
import tempfile
import threading
import uuid
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as db
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleCauseCategory
from dagster._core.execution.compute_logs import redirect_to_file
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus  # noqa: F401
from dagster._core.loader import LoadingContextForTest
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext  # noqa: F401
from dagster._core.storage.event_log import SqlEventLogStorageMetadata
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._core.storage.sql import create_engine, get_alembic_config, safe_commit
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._utils import ensure_file, touch_file
from sqlalchemy.pool import SingletonThreadPool

CHECKED_VERSION = "1.13.27"  # the Dagster these internals were checked against (= the pin in pyproject.toml)


class Staleness:
    """Stale status and causes of asset partitions, cached for one state of the instance (make a new one
    after runs: upstream may just have changed)."""

    def __init__(self, instance, asset_graph):
        self._resolver = CachingStaleStatusResolver(instance, asset_graph, LoadingContextForTest(instance))

    def status(self, key, partition: str | None) -> str:
        """"MISSING" | "STALE" | "FRESH"."""
        return self._resolver.get_status(key, partition).value

    def data_changed_in(self, key, partition: str | None, sources: set) -> bool:
        """Is the partition stale because one of `sources` (asset keys) has a new data version?"""
        return any(c.category == StaleCauseCategory.DATA and c.dependency is not None
                   and c.dependency.asset_key in sources for c in self._resolver.get_stale_causes(key, partition))


# The runner's event log. Dagster's SQLite event log keeps a database per run; for each new one it loads
# its ~90 alembic migration scripts twice (compare, then stamp: ~0.15 s), and for each event it builds
# and disposes a SQLAlchemy engine and a connection (closing a WAL database's last connection
# checkpoints it). With one run per stale partition (101 runs to add 1% queries at 16 shards x 2
# teachers) that was ~0.35 s of each ~0.8 s run here. `speed_up` swaps an open instance's plain SQLite
# event log for a subclass that reads the scripts once per process and keeps an engine per file with
# one connection per thread (WAL: other processes read and write meanwhile; synchronous=NORMAL, as the
# run storage below), closed when the engine leaves the 16 kept or the instance is disposed. Files,
# tables, schema and stamp are Dagster's own, so the webserver, the daemon and other processes use
# them with Dagster's class, and dagster.yaml names no project code. Creating a run's file (Dagster's
# ~20 tables and indexes, then the stamp) still took ~30 ms a run; a new run's file is now a copy of
# one created once per process the same way. tests/test_sqlite_events.py compares the files with Dagster's.
_SCRIPT_LOCK = threading.Lock()
_SCRIPT = None  # alembic's ScriptDirectory of Dagster's migrations, loaded once per process
_TEMPLATE_LOCK = threading.Lock()
_TEMPLATE: bytes | None = None  # an empty, stamped run database, made once per process
_KEEP_ENGINES = 16  # run databases stay busy for one run: a few engines at once are enough


def _head_script():
    global _SCRIPT
    with _SCRIPT_LOCK:
        if _SCRIPT is None:
            _SCRIPT = ScriptDirectory.from_config(get_alembic_config(inspect.getfile(SqliteEventLogStorage)))
        return _SCRIPT


class FastSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage that reads the alembic scripts once and keeps an engine per file."""

    _engines: OrderedDict  # set by `speed_up` (the class is swapped in after Dagster's __init__)

    def _initdb(self, engine, for_index_shard: bool = False) -> None:
        # for_index_shard is only passed by __init__, which ran as Dagster's class before the swap
        path = engine.url.database
        if path and not os.path.exists(path):
            _copy_template(path)
        try:
            with engine.connect() as conn:
                _create_stamped(engine, conn)  # a no-op on the copy; creates it if the copy failed
        except (db.exc.DatabaseError, sqlite3.DatabaseError):  # a rival process creating it: Dagster's retries
            super()._initdb(engine, for_index_shard)

    def _engine(self, shard: str):
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(self.conn_string_for_shard(shard), poolclass=SingletonThreadPool,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            db.event.listen(engine, "connect", _wal_normal)
        self._engines[shard] = engine
        while len(self._engines) > _KEEP_ENGINES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines = OrderedDict()

    @contextmanager
    def _connect(self, shard: str):
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn


def _create_stamped(engine, conn) -> None:
    """Dagster's tables, WAL mode and the head stamp, in a file that has no stamp yet."""
    context = MigrationContext.configure(conn)
    if context.get_current_revision() is None:
        SqlEventLogStorageMetadata.create_all(engine)
        conn.execute(db.text("PRAGMA journal_mode=WAL;"))
        context.stamp(_head_script(), "head")
        safe_commit(conn)


def _copy_template(path: str) -> None:
    """Write the process's template at `path` unless a file is there (a rival's): the copy is written
    beside it and linked into place, so no process sees half a file or loses its own."""
    global _TEMPLATE
    with _TEMPLATE_LOCK:
        if _TEMPLATE is None:
            with tempfile.TemporaryDirectory(prefix="am-distill-runs-") as folder:
                engine = create_engine(f"sqlite:///{folder}/template.db", poolclass=db.pool.NullPool)
                with engine.connect() as conn:
                    _create_stamped(engine, conn)
                engine.dispose()  # the last connection closed: the WAL is checkpointed into the file
                _TEMPLATE = Path(folder, "template.db").read_bytes()
    tmp = Path(f"{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        tmp.write_bytes(_TEMPLATE)
        os.link(tmp, path)
    except OSError:  # the file exists (a rival made it), or no hard links here: _create_stamped makes it
        pass
    finally:
        tmp.unlink(missing_ok=True)


# The run storage (runs.db). Dagster's SqliteRunStorage makes an engine and opens a connection for each
# operation, ~34 a run (creating the run, each run event and the run read after it, index checks), at
# ~0.5-1 ms each for the open and the commit's fsync: ~20-40 ms a run, 2-4 s for the 101 runs of adding
# 1% queries. FastSqliteRunStorage keeps one connection per thread (WAL: other processes read and write
# between its transactions), with synchronous=NORMAL: WAL stays consistent, and a power cut may lose
# the last commits, whose runs then read as not run. The file and schema are Dagster's own.
class FastSqliteRunStorage(SqliteRunStorage):
    """SqliteRunStorage with a kept connection per thread."""

    _kept: tuple[int, object] | None  # (pid, engine): set by `speed_up`; a forked child makes its own
    _kept_lock: threading.RLock

    def _kept_engine(self):
        if self._kept is None or self._kept[0] != os.getpid():
            engine = create_engine(self._conn_string, poolclass=SingletonThreadPool,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            db.event.listen(engine, "connect", _wal_normal)
            self._kept = (os.getpid(), engine)
        return self._kept[1]

    @contextmanager
    def connect(self):
        with self._kept_lock:  # one transaction at a time on the thread's connection
            with self._kept_engine().connect() as conn:
                with conn.begin():
                    yield conn

    def dispose(self) -> None:
        super().dispose()
        with self._kept_lock:
            if self._kept is not None and self._kept[0] == os.getpid():
                self._kept[1].dispose()
            self._kept = None


def _wal_normal(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


# A step's stdout and stderr. Dagster's local compute log manager redirects each stream to its log file
# and, to keep showing it in the terminal, starts two processes per stream: `tail -F` of the file and a
# Python interpreter watching for the tail's orphaning. That is four processes per run (~8 ms each to
# start in the runner, plus the interpreters' own start-up on the other core), 404 for the 101 runs of
# adding 1% queries. FastLocalComputeLogManager writes the same files and mirrors them to the terminal
# from a thread instead (which cannot outlive the process).
class FastLocalComputeLogManager(LocalComputeLogManager):
    """LocalComputeLogManager whose terminal mirror is a thread, not two processes per stream."""

    @contextmanager
    def capture_logs(self, log_key):
        outpath = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        errpath = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        with _mirrored(sys.stdout, outpath), _mirrored(sys.stderr, errpath):
            yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))  # the capture is complete, as Dagster marks it


@contextmanager
def _mirrored(stream, path: str, every_s: float = 0.2):
    """`stream` redirected to the file at `path` (appending), whose bytes a thread copies to where the
    stream pointed before, from the file's start (as `tail -c +0` does)."""
    ensure_file(path)
    try:
        terminal = os.dup(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no file descriptor (a test's captured stream)
        with redirect_to_file(stream, path):
            yield
        return
    done = threading.Event()

    def copy() -> None:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 16)
                if chunk:
                    try:
                        while chunk:
                            chunk = chunk[os.write(terminal, chunk):]
                    except OSError:  # the terminal went away: the file still has everything
                        return
                elif done.is_set():
                    return
                else:
                    done.wait(every_s)

    thread = threading.Thread(target=copy, name="am-distill-log-mirror", daemon=True)
    thread.start()
    try:
        with redirect_to_file(stream, path):
            yield
    finally:
        done.set()
        thread.join()
        os.close(terminal)


def speed_up(instance) -> None:
    """Use FastSqliteEventLogStorage for `instance`'s event log and FastSqliteRunStorage for its run
    storage when they are exactly Dagster's SQLite ones (a Postgres instance or another class is left
    as it is), and FastLocalComputeLogManager for its compute logs when they are exactly Dagster's
    local ones."""
    storage = getattr(instance, "_event_storage", None)
    if type(storage) is SqliteEventLogStorage:
        storage.__class__ = FastSqliteEventLogStorage  # Dagster's fields, plus the engines it keeps
        storage._engines = OrderedDict()
    runs = getattr(instance, "_run_storage", None)
    if type(runs) is SqliteRunStorage:
        runs.__class__ = FastSqliteRunStorage
        runs._kept, runs._kept_lock = None, threading.RLock()
    logs = instance.compute_log_manager  # built on first use
    if type(logs) is LocalComputeLogManager:
        logs.__class__ = FastLocalComputeLogManager
