"""A throwaway PostgreSQL server for tests and benchmarks: Debian's `postgresql` binaries, a temp data
dir, loopback. initdb refuses to run as root, so as root the server runs as the `postgres` user
(Debian's package creates it). tests/pg_server.py skips the calling test when the binaries are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

MISSING = "PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql"
PG_USER, PG_DB, PG_PASSWORD = "dagster", "dagster", "not-a-real-secret"  # trust auth on loopback


def pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server(base: Path) -> Iterator[dict[str, str]]:
    """Start a server in `base`; yields the DAGSTER_PG_* environment that reaches it."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        raise FileNotFoundError(MISSING)
    data, sock = base / "pgdata", base / "pgsock"
    sock.mkdir(parents=True)
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True, timeout=120)  # noqa: E731
    run(initdb, "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8")
    run(pg_ctl, "-D", str(data), "-w", "-l", str(base / "pg.log"), "-o",
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off", "start")
    try:
        env = {"DAGSTER_PG_USER": PG_USER, "DAGSTER_PG_PASSWORD": PG_PASSWORD, "DAGSTER_PG_HOST": "127.0.0.1",
               "DAGSTER_PG_PORT": str(port), "DAGSTER_PG_DB": PG_DB}
        createdb = pg_bin("createdb")
        subprocess.run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, PG_DB],
                       check=True, capture_output=True, timeout=60)
        yield env
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        time.sleep(0.2)
