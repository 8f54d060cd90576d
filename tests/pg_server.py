"""The throwaway PostgreSQL server of benchmarks/pg_server.py, skipping the test when the binaries are missing."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from benchmarks.pg_server import MISSING, PG_DB, PG_PASSWORD, PG_USER, free_port, pg_bin  # noqa: F401 - re-exported
from benchmarks.pg_server import postgres_server as _server


@contextmanager
def postgres_server(base: Path) -> Iterator[dict[str, str]]:
    if not (pg_bin("initdb") and pg_bin("pg_ctl")):
        pytest.skip(MISSING)
    with _server(base) as env:
        yield env
