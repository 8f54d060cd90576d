"""The lake on an S3-compatible object store: moto's S3 server on a loopback port, started here.

What deltalake 1.6.6 does on S3 (measured against moto 5.2.5, which honours `If-None-Match`/`If-Match`):
every commit is a conditional put (`If-None-Match: *` on the log entry) whether or not
`conditional_put: etag` is set; `AWS_S3_ALLOW_UNSAFE_RENAME` no longer turns that off; the DynamoDB
locking provider is gone (an error is logged and conditional puts are used anyway); and
`conditional_put: disabled` makes every commit fail. The lake's concurrency rules (resources/lake.py)
therefore hold on S3 as on a local path, provided the store honours `If-None-Match`.
"""

from __future__ import annotations

import multiprocessing as mp
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError

from resources.lake import LakeResource, content_hash
from tests.test_lake_concurrency import (PARTITIONS, ROWS, FakeEmbedder, _task, cache_texts, fill_cache, race,
                                         write_all)

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

BUCKET = "am-distill-lake"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # moto accepts any
WORKERS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint():
    # its own process: some deltalake calls (DeltaTable.history) hold the GIL while they wait on
    # the store, so a server thread in this process would never answer them
    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          **{k.lower(): v for k, v in CREDENTIALS.items()})
    try:
        deadline = time.time() + 30
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # not listening yet
                assert server.poll() is None and time.time() < deadline, "moto_server did not start"
                time.sleep(0.2)
        with pytest.MonkeyPatch.context() as mp_env:
            for k, v in CREDENTIALS.items():  # credentials from the environment, as docs/deploy.md says
                mp_env.setenv(k, v)
            yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def s3_options(endpoint: str, **extra: str) -> dict[str, str]:
    """The storage options docs/deploy.md documents for an S3-compatible store (no secrets)."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true",
            "conditional_put": "etag", **extra}


def test_write_scan_and_cache_append_round_trip_on_s3(endpoint):
    lake = LakeResource(root=f"s3://{BUCKET}/roundtrip", storage_options=s3_options(endpoint))
    a = pl.DataFrame({"query_id": ["q1", "q2"], "score": [0.5, 1.0]})
    v0 = lake.write_partition("outcomes", a, {"teacher": "t1", "shard": "s00"}, extra_metadata={"note": "first"})
    v1 = lake.write_partition("outcomes", a.with_columns(score=pl.lit(0.0)), {"teacher": "t2", "shard": "s00"})
    v2 = lake.write_partition("outcomes", a.head(1), {"teacher": "t1", "shard": "s00"})  # overwrite t1 only
    assert v0 < v1 < v2 == lake.version("outcomes")
    got = lake.scan("outcomes", {"teacher": "t1"}).collect()
    assert got.select("query_id", "score").rows() == [("q1", 0.5)]
    assert lake.read("outcomes", {"teacher": ["t1", "t2"]}).height == 3
    assert lake.scan("outcomes", {"teacher": "t1"}, version=v1).collect().height == 2  # time travel
    assert any(h.get("note") == "first" for h in lake.history("outcomes"))

    from am_assets.dedup.embeddings import embed_with_cache

    texts = cache_texts(0)
    vecs, _, stats = embed_with_cache(lake, FakeEmbedder(), texts)
    assert stats["embedded_new"] == texts.height
    again, _, stats = embed_with_cache(lake, FakeEmbedder(), cache_texts(1))  # overlaps 600 texts
    assert (stats["reused"], stats["embedded_new"]) == (600, 300)
    cache = lake.read("embedding_cache")
    assert cache.height == cache["text_hash"].n_unique() == 1200
    assert (again[:600] == vecs[300:]).all()  # the cached vectors came back from S3 unchanged


def test_a_commit_on_a_stale_snapshot_is_refused(endpoint):
    """What makes concurrent commits safe: the store refuses a second log entry of one version."""
    for name, extra in (("explicit", {}), ("default", {"conditional_put": ""}),
                        ("unsafe_rename", {"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}),
                        ("dynamodb", {"AWS_S3_LOCKING_PROVIDER": "dynamodb"})):  # gone: logs an error, still safe
        opts = {k: v for k, v in s3_options(endpoint, **extra).items() if v}
        uri = f"s3://{BUCKET}/stale-{name}"
        pl.DataFrame({"a": [0]}).write_delta(uri, storage_options=opts)
        stale, fresh = DeltaTable(uri, storage_options=opts), DeltaTable(uri, storage_options=opts)
        pl.DataFrame({"a": [1]}).write_delta(fresh, mode="append")
        with pytest.raises(CommitFailedError):
            pl.DataFrame({"a": [2]}).write_delta(stale, mode="append", delta_write_options={
                "commit_properties": CommitProperties(max_commit_retries=0)})
        assert sorted(pl.read_delta(uri, storage_options=opts)["a"].to_list()) == [0, 1], name
    with pytest.raises(OSError, match="conditional put is disabled"):  # fails loudly, never writes unsafely
        pl.DataFrame({"a": [0]}).write_delta(f"s3://{BUCKET}/disabled",
                                             storage_options=s3_options(endpoint, conditional_put="disabled"))


@pytest.fixture(scope="module")
def s3_pool(endpoint):
    """Spawned workers whose environment names the store: the shared worker code builds a plain
    LakeResource(root=...), and deltalake reads the same settings from AWS_* variables."""
    env = {k.upper() if k != "conditional_put" else "AWS_CONDITIONAL_PUT": v for k, v in s3_options(endpoint).items()}
    with pytest.MonkeyPatch.context() as mp_env:
        for k, v in env.items():
            mp_env.setenv(k, v)
        pool = mp.get_context("spawn").Pool(WORKERS)  # children copy the environment when they start
    try:
        pool.map(_task, [("warm_up", "", w, 0) for w in range(WORKERS)], chunksize=1)
        yield pool
    finally:  # close + join: Pool.terminate (what `with pool` does) can hang on a worker waiting for a task
        pool.close()
        pool.join()


def test_concurrent_processes_on_s3_lose_and_duplicate_nothing(s3_pool, endpoint, tmp_path):
    seq = str(tmp_path / "sequential")  # the same writes, one after another, on a local lake
    for w in range(WORKERS):
        write_all(seq, w)
        fill_cache(seq, w)
    local = LakeResource(root=seq)
    root = f"s3://{BUCKET}/race"
    race(s3_pool, "write_all", root, WORKERS)
    race(s3_pool, "fill_cache", root, WORKERS)
    lake = LakeResource(root=root, storage_options=s3_options(endpoint))
    outcomes = lake.read("outcomes")
    assert outcomes.height == ROWS * len(PARTITIONS)
    assert outcomes.select("query_id", "teacher", "shard").n_unique() == outcomes.height, "duplicate keys"
    for table, key in (("outcomes", None), ("mix", ["query_id"]), ("embedding_cache", ["text_hash"])):
        got = lake.read(table)
        if key:
            assert got.select(key).n_unique() == got.height, f"duplicate keys in {table}"
        assert content_hash(got) == content_hash(local.read(table)), f"{table} differs from the sequential build"
