"""GSM8K (real, 1,319 rows) written by the test into every container a source path can be: compressed
JSONL/CSV/TSV, Arrow, Parquet shards in a folder or a glob, a Hub-cache snapshot folder, and
`datasets.save_to_disk` folders. Every one ingests the same rows."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import polars as pl
import pyarrow as pa
import pytest
import zstandard

from am_assets.ingest.logic import ingest_source, source_fingerprint
from resources.config import CleaningConfig, FileSource
from tests.conftest import shared

MAPPING = {"question": "question", "answer": "answer", "answer_format": "gsm8k"}


@pytest.fixture(scope="module")
def gsm8k():
    path = shared("gsm8k/test.jsonl")
    rows, rejected = ingest_source(FileSource(name="g", kind="file", path=path, mapping=MAPPING), CleaningConfig())
    assert rows.height == 1319 and rejected.height == 0
    return path.read_bytes(), pl.read_ndjson(path), rows


def _same(path, baseline, **extra):
    rows, rejected = ingest_source(FileSource(name="g", kind="file", path=path, mapping=MAPPING, **extra),
                                   CleaningConfig())
    assert rejected.height == 0, rejected.head(3)
    assert rows.height == baseline.height and rows["query_id"].to_list() == baseline["query_id"].to_list()
    assert rows["reference_answer"].to_list() == baseline["reference_answer"].to_list()
    return rows


@pytest.mark.parametrize("suffix, compress", [
    (".jsonl.gz", gzip.compress), (".jsonl.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    (".jsonl.bz2", bz2.compress), (".jsonl.xz", lzma.compress), (".ndjson", lambda b: b)])
def test_compressed_jsonl(tmp_path, gsm8k, suffix, compress):
    raw, _, baseline = gsm8k
    path = tmp_path / f"test{suffix}"
    path.write_bytes(compress(raw))
    _same(path, baseline)


@pytest.mark.parametrize("name", ["test.csv", "test.csv.zst", "test.tsv.xz"])
def test_delimited_files_compressed_or_not(tmp_path, gsm8k, name):
    _, frame, baseline = gsm8k
    text = frame.write_csv(separator="\t" if ".tsv" in name else ",").encode()
    path = tmp_path / name
    path.write_bytes(zstandard.ZstdCompressor().compress(text) if name.endswith(".zst") else
                     lzma.compress(text) if name.endswith(".xz") else text)
    _same(path, baseline)


def test_parquet_shards_as_a_folder_a_glob_and_a_hub_cache_snapshot(tmp_path, gsm8k):
    _, frame, baseline = gsm8k
    shards = tmp_path / "data"
    shards.mkdir()
    bounds = [0, 400, 800, 1319]
    for i in range(3):
        frame.slice(bounds[i], bounds[i + 1] - bounds[i]).write_parquet(shards / f"test-{i:05d}-of-00003.parquet")
    (shards / "README.md").write_text("not data")
    rows = _same(shards, baseline)
    assert rows["source_row"][0] == "test-00000-of-00003.parquet:1" and rows["source_row"][400] == (
        "test-00001-of-00003.parquet:1")
    _same(tmp_path / "data" / "test-*.parquet", baseline)

    snapshot = tmp_path / "hub" / "datasets--openai--gsm8k" / "snapshots" / "e53f048" / "main"
    snapshot.mkdir(parents=True)
    frame.write_parquet(snapshot / "test-00000-of-00001.parquet")
    (tmp_path / "hub" / "datasets--openai--gsm8k" / "refs").mkdir()
    (tmp_path / "hub" / "datasets--openai--gsm8k" / "refs" / "main").write_text("e53f048")
    _same(tmp_path / "hub" / "datasets--openai--gsm8k", baseline)


def test_arrow_stream_and_file(tmp_path, gsm8k):
    _, frame, baseline = gsm8k
    table = frame.to_arrow()
    stream, file = tmp_path / "test.arrow", tmp_path / "file_format.arrow"
    with pa.OSFile(str(stream), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=300):
            writer.write_batch(batch)
    with pa.OSFile(str(file), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    _same(stream, baseline)
    _same(file, baseline)


def test_save_to_disk_dataset_and_dataset_dict(tmp_path, gsm8k):
    import datasets

    _, frame, baseline = gsm8k
    ds = datasets.Dataset.from_polars(frame)
    ds.save_to_disk(str(tmp_path / "one"))
    _same(tmp_path / "one", baseline)
    datasets.DatasetDict({"train": ds.select(range(10)), "test": ds}).save_to_disk(str(tmp_path / "dict"))
    _same(tmp_path / "dict", baseline, split="test")
    rows, _ = ingest_source(FileSource(name="g", kind="file", path=tmp_path / "dict", mapping=MAPPING),
                            CleaningConfig())
    assert rows.height == 10  # default split: train


def test_the_data_version_follows_every_part(tmp_path, gsm8k):
    _, frame, _ = gsm8k
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.head(10).write_ndjson(folder / "a.jsonl")
    frame.slice(10, 10).write_ndjson(folder / "b.jsonl")
    src = FileSource(name="g", kind="file", path=folder, mapping=MAPPING)
    before = source_fingerprint(src)
    assert source_fingerprint(src) == before
    (folder / "b.jsonl").write_text((folder / "b.jsonl").read_text() + json.dumps(frame.row(30, named=True)) + "\n")
    assert source_fingerprint(src) != before
