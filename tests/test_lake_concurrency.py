"""Several processes at once: lake writes, the embedding cache, a fresh DAGSTER_HOME, killed runs.

Real processes (a spawn pool started once, released together by a start time), repeated; every table
must equal a sequential build (content hash) and hold each key once. What deltalake 1.6.6 does on
its own (measured here with 3 processes): two first writes of one partition both commit (versions 0
and 1, each a table creation) and the rows double; an overwrite of an existing partition that loses
the race raises CommitFailedError; overwrites of different partitions and blind appends all commit.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from resources.lake import LakeResource, content_hash

PROJECT_DIR = Path(__file__).resolve().parent.parent
WORKERS = 4
REPEATS = 3
ROWS = 20_000  # enough that writes overlap in time
PARTITIONS = [{"teacher": t, "shard": s} for t in ("a", "b") for s in ("s00", "s01")]


def partition_rows(part: dict[str, str]) -> pl.DataFrame:
    """The content of one partition: a function of its key only, whoever writes it."""
    seed = sum(ord(c) for c in part["teacher"] + part["shard"])
    ids = [f"{part['shard']}-{i}" for i in range(ROWS)]
    return pl.DataFrame({"query_id": ids, "score": np.random.default_rng(seed).random(ROWS)})


def write_all(root: str, worker: int) -> None:
    """One worker's writes: every partition (in a rotated order, so rivals hit the same and other
    partitions at the same time) and the unpartitioned table."""
    lake = LakeResource(root=root)
    order = PARTITIONS[worker % len(PARTITIONS):] + PARTITIONS[:worker % len(PARTITIONS)]
    lake.write_partition("mix", partition_rows({"teacher": "all", "shard": "all"}), None)
    for part in order:
        lake.write_partition("outcomes", partition_rows(part), part)


class FakeEmbedder:
    """Deterministic vectors from the text: the cache content does not depend on who embedded it."""

    def embedder_id(self) -> str:
        return "fake-8"

    def encode(self, texts, progress=None):
        seeds = [int(hashlib.blake2b(t.encode(), digest_size=4).hexdigest(), 16) for t in texts]
        return np.stack([np.random.default_rng(s).random(8) for s in seeds]).astype(np.float32)


def cache_texts(worker: int) -> pl.DataFrame:
    from am_assets.dedup.embeddings import with_text_hash

    texts = [f"question {i}" for i in range(worker * 300, worker * 300 + 900)]  # overlaps the next 2 workers
    return with_text_hash(pl.DataFrame({"question": texts}))


def fill_cache(root: str, worker: int) -> None:
    from am_assets.dedup.embeddings import embed_with_cache

    embed_with_cache(LakeResource(root=root), FakeEmbedder(), cache_texts(worker))


def warm_up(root: str, worker: int) -> None:
    import am_assets.dedup.embeddings  # noqa: F401  (imports outside the raced window)


def _task(args):
    fn, root, worker, start_at = args
    while time.time() < start_at:  # all workers start their writes together
        time.sleep(0.001)
    try:
        {"write_all": write_all, "fill_cache": fill_cache, "warm_up": warm_up}[fn](root, worker)
    except Exception as e:  # delta-rs exceptions do not pickle: report them as text
        return f"worker {worker}: {type(e).__name__}: {e}"
    return None


@pytest.fixture(scope="module")
def pool():
    p = mp.get_context("spawn").Pool(WORKERS)
    try:
        p.map(_task, [("warm_up", "", w, 0) for w in range(WORKERS)], chunksize=1)
        yield p
    finally:  # close + join: Pool.terminate (what `with Pool()` does) can hang on a worker waiting for a task
        p.close()
        p.join()


def race(pool, fn: str, root: str, workers: int = WORKERS) -> None:
    """`fn` in each of the pool's `workers` processes, all released at the same instant."""
    start_at = time.time() + 1.0
    errors = [e for e in pool.map(_task, [(fn, root, w, start_at) for w in range(workers)], chunksize=1) if e]
    assert not errors, "\n".join(errors)


def test_concurrent_first_writes_and_partition_overwrites(pool, tmp_path):
    seq = str(tmp_path / "sequential")
    for w in range(WORKERS):
        write_all(seq, w)
    want = {t: content_hash(LakeResource(root=seq).read(t)) for t in ("mix", "outcomes")}
    for rep in range(REPEATS):
        root = str(tmp_path / f"lake{rep}")
        race(pool, "write_all", root)
        lake = LakeResource(root=root)
        for table in ("mix", "outcomes"):
            df = lake.read(table)
            keys = ["query_id"] + (["teacher", "shard"] if table == "outcomes" else [])
            assert df.height == df.select(keys).n_unique(), f"round {rep}: duplicate keys in {table}"
            assert content_hash(df) == want[table], f"round {rep}: {table} differs from the sequential build"
        assert lake.read("outcomes").height == ROWS * len(PARTITIONS)


def test_concurrent_cache_appends_keep_one_row_per_key(pool, tmp_path):
    seq = str(tmp_path / "sequential")
    for w in range(WORKERS):
        fill_cache(seq, w)
    want = LakeResource(root=seq).read("embedding_cache")
    assert want.height == 300 * (WORKERS + 2)
    for rep in range(REPEATS):
        root = str(tmp_path / f"lake{rep}")
        race(pool, "fill_cache", root)
        got = LakeResource(root=root).read("embedding_cache")
        assert got["text_hash"].n_unique() == got.height, f"round {rep}: duplicate keys in embedding_cache"
        assert content_hash(got) == content_hash(want), f"round {rep}: cache differs from the sequential build"


def test_keyed_append_skips_present_keys_and_returns_its_version(tmp_path):
    lake = LakeResource(root=str(tmp_path / "lake"))
    v0 = lake.write_partition("c", pl.DataFrame({"k": ["x", "y"], "v": [1, 2]}), {"p": "1"}, mode="append", key=["k"])
    v1 = lake.write_partition("c", pl.DataFrame({"k": ["y", "z", "z"], "v": [9, 3, 4]}), {"p": "1"},
                              mode="append", key=["k"])
    lake.write_partition("c", pl.DataFrame({"k": ["x"], "v": [5]}), {"p": "2"}, mode="append", key=["k"])
    assert v1 > v0 and lake.version("c") == v1 + 1
    assert sorted(lake.read("c", {"p": "1"}).select("k", "v").rows()) == [("x", 1), ("y", 2), ("z", 3)]
    assert lake.read("c", {"p": "2"})["v"].to_list() == [5]  # keys are per partition
    assert lake.write_partition("c", pl.DataFrame({"k": ["x"], "v": [7]}), {"p": "1"}, mode="append",
                                key=["k"]) == v1 + 1  # nothing new: no commit


def _run_cli(home: Path, n: int) -> list[subprocess.CompletedProcess]:
    env = dict(os.environ, DAGSTER_HOME=str(home))
    procs = [subprocess.Popen([sys.executable, "-m", "am_distill.cli", "validate"], cwd=PROJECT_DIR, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]


def test_cli_processes_on_a_fresh_dagster_home(tmp_path):
    """Before: one of two crashed with `table snapshots already exists` (or an alembic UNIQUE error)."""
    for rep in range(2):
        home = tmp_path / f"home{rep}"
        for r in _run_cli(home, 2):
            assert r.returncode == 0, f"round {rep}: {r.stderr[-2000:]}"
            assert "valid;" in r.stdout
        import dagster as dg

        with dg.DagsterInstance.from_config(str(home)) as instance:  # a usable instance was left behind
            assert instance.get_runs(limit=1) == []


KILLED_RUN = textwrap.dedent("""
    import sys, time
    import dagster as dg
    from resources.instance import run_tags

    @dg.asset
    def slow():
        open(sys.argv[1], "w").close()
        time.sleep(120)

    dg.materialize([slow], instance=dg.DagsterInstance.get(), tags=run_tags())
""")


def test_runs_of_a_killed_process_are_marked_failed(tmp_path):
    import dagster as dg
    from dagster._core.utils import make_new_run_id

    from resources.instance import HOST_TAG, PID_TAG, START_TAG, _process_start, fail_dead_runs, prepare_home

    home = tmp_path / "home"
    prepare_home(home, PROJECT_DIR / "scripts" / "dagster.yaml")
    marker = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(marker)], cwd=PROJECT_DIR,
                            env=dict(os.environ, DAGSTER_HOME=str(home), PYTHONPATH=str(PROJECT_DIR)))
    alive = subprocess.Popen(["sleep", "60"])
    try:
        deadline = time.time() + 60
        while not marker.exists():
            assert proc.poll() is None and time.time() < deadline, "the run did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            [killed] = instance.get_runs()
            assert killed.status == dg.DagsterRunStatus.STARTED  # what the UI showed forever
            host = killed.tags[HOST_TAG]
            live_tags = {PID_TAG: str(alive.pid), HOST_TAG: host, START_TAG: _process_start(alive.pid)}
            reused = {**live_tags, START_TAG: "1"}  # same pid, another process start: the runner is gone
            other_host = {**live_tags, PID_TAG: "999999", HOST_TAG: "elsewhere"}
            ids = {}
            for name, tags in (("live", live_tags), ("reused", reused), ("other_host", other_host)):
                ids[name] = make_new_run_id()
                instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", run_id=ids[name],
                                               status=dg.DagsterRunStatus.STARTED, tags=tags))
            failed = fail_dead_runs(instance, log=lambda _: None)
            assert sorted(failed) == sorted([killed.run_id, ids["reused"]])
            status = {r.run_id: r.status for r in instance.get_runs()}
            assert status[killed.run_id] == dg.DagsterRunStatus.FAILURE
            assert status[ids["live"]] == status[ids["other_host"]] == dg.DagsterRunStatus.STARTED
            assert fail_dead_runs(instance, log=lambda _: None) == []  # idempotent
    finally:
        alive.kill()
        proc.kill()


ADD_PARTITIONS = textwrap.dedent("""
    import sys, time
    import dagster as dg
    from resources.instance import add_partitions

    instance = dg.DagsterInstance.get()
    instance.get_runs(limit=1)
    while time.time() < float(sys.argv[1]):
        time.sleep(0.001)
    for i in range(30):
        add_partitions(instance, "teacher", [f"t{i}-{j}" for j in range(3)])
    print(len(instance.get_dynamic_partitions("teacher")))
""")


def test_processes_registering_the_same_partitions(tmp_path):
    """Dagster's check-then-insert made one of them fail with a UNIQUE constraint error."""
    from resources.instance import prepare_home

    home = tmp_path / "home"
    prepare_home(home, PROJECT_DIR / "scripts" / "dagster.yaml")
    start_at = str(time.time() + 8)
    procs = [subprocess.Popen([sys.executable, "-c", ADD_PARTITIONS, start_at], cwd=PROJECT_DIR,
                              env=dict(os.environ, DAGSTER_HOME=str(home)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        assert out.split()[-1] == "90"
