"""The lake resource on its own: partition overwrite, append, scan filters, time travel, URIs."""

import polars as pl

from resources.lake import LakeResource, content_hash, partition_predicate


def test_partition_overwrite_append_and_time_travel(tmp_path):
    lake = LakeResource(root=f"file://{tmp_path}/lake")  # a URI, as object stores use
    v0 = lake.write_partition("t", pl.DataFrame({"x": [1, 2]}), {"shard": "s00", "teacher": "a"})
    lake.write_partition("t", pl.DataFrame({"x": [3]}), {"shard": "s01", "teacher": "a"})
    lake.write_partition("t", pl.DataFrame({"x": [9]}), {"shard": "s00", "teacher": "a"})
    lake.write_partition("t", pl.DataFrame({"x": [10], "y": ["new column"]}), {"shard": "s00", "teacher": "a"},
                         mode="append")
    now = lake.scan("t").sort("x").collect()
    assert now["x"].to_list() == [3, 9, 10] and now["y"].to_list() == [None, None, "new column"]
    assert lake.scan("t", {"shard": ["s01"]}).collect()["x"].to_list() == [3]
    assert sorted(lake.scan("t", version=v0).collect()["x"].to_list()) == [1, 2]
    assert lake.read("absent").height == 0


def test_predicate_quotes_values():
    assert partition_predicate({"teacher": "o'brien", "shard": "s00"}) == "shard = 's00' AND teacher = 'o''brien'"


def test_content_hash_ignores_row_order_but_not_content():
    a = pl.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    assert content_hash(a) == content_hash(a.reverse())
    assert content_hash(a) != content_hash(a.with_columns(pl.lit("c").alias("y")))
    assert content_hash(a) != content_hash(a.rename({"y": "z"}))


def test_content_hash_is_the_same_hashed_a_slice_at_a_time(monkeypatch):
    """The row hashes are taken a slice at a time (bounded memory): the digest does not change with the slices."""
    import resources.lake as lake

    df = pl.DataFrame({"id": [f"r{i}" for i in range(3000)], "vec": [[float(i), None] for i in range(3000)]})
    whole = content_hash(df)
    monkeypatch.setattr(lake, "WRITE_BATCH_BYTES", 1000)
    assert lake._rows_per(df, lake.WRITE_BATCH_BYTES) < 100  # many slices
    assert content_hash(df) == whole and content_hash(df.reverse()) == whole
    assert content_hash(df.head(2999)) != whole


def test_a_frame_is_written_in_bounded_record_batches(tmp_path):
    """delta-rs gets the frame as a stream of batches (record_batches): every row lands once, as it was."""
    from resources.lake import record_batches

    df = pl.DataFrame({"id": [f"r{i}" for i in range(5000)], "vec": [[float(i), 1.0] for i in range(5000)]})
    reader = record_batches(df, batch_bytes=4096)
    batches = list(reader)
    assert len(batches) > 10 and sum(b.num_rows for b in batches) == 5000
    lake = LakeResource(root=str(tmp_path))
    lake.write_partition("t", df, {"shard": "s0"})
    lake.write_partition("t", df.head(7), {"shard": "s0"}, mode="append")
    back = lake.read("t", {"shard": "s0"}).drop("shard")
    assert back.sort("id").equals(pl.concat([df, df.head(7)]).sort("id"))


def test_row_groups_are_bounded_so_ordered_columns_prune(tmp_path):
    """Files hold row groups of at most ROW_GROUP_ROWS rows, with statistics and the usual compression."""
    import pyarrow.parquet as pq

    from resources.lake import ROW_GROUP_ROWS

    lake = LakeResource(root=str(tmp_path))
    n = 2 * ROW_GROUP_ROWS + 5
    lake.write_partition("t", pl.DataFrame({"k": range(n)}), {"shard": "s0"})
    [uri] = lake.table("t").file_uris()
    meta = pq.ParquetFile(uri).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [ROW_GROUP_ROWS] * 2 + [5]
    column = meta.row_group(1).column(0)
    assert column.statistics.min == ROW_GROUP_ROWS and column.compression == "SNAPPY"


def test_mostly_distinct_strings_are_written_without_a_dictionary(tmp_path):
    """Ids and texts skip the dictionary the writer would build and drop; repeated values keep it.
    Statistics and compression are those of every write, and the rows read back the same."""
    import pyarrow.parquet as pq

    lake = LakeResource(root=str(tmp_path))
    n = 5000
    df = pl.DataFrame({"response_id": [f"r{i:06d}" for i in range(n)], "status": ["ok", "error"] * (n // 2),
                       "score": [float(i % 3) for i in range(n)]})
    lake.write_partition("t", df, {"shard": "s0"})
    [uri] = lake.table("t").file_uris()
    meta = pq.ParquetFile(uri).metadata
    columns = {c.path_in_schema: c for c in (meta.row_group(0).column(i) for i in range(meta.num_columns))}
    assert not any("DICTIONARY" in e for e in columns["response_id"].encodings)
    assert any("DICTIONARY" in e for e in columns["status"].encodings)
    assert columns["response_id"].statistics.min == "r000000" and columns["response_id"].compression == "SNAPPY"
    assert lake.read("t", {"shard": "s0"}).drop("shard").sort("response_id").equals(df)


def test_the_kept_newest_snapshot_follows_other_writers_and_a_table_made_again(tmp_path):
    """LakeResource keeps each table's newest snapshot between calls and only reads the commits since:
    a write by another writer is seen, a table removed and created again at the same path is
    opened anew, and a snapshot handed out by `table()` does not move when the kept one does."""
    import shutil

    from deltalake import write_deltalake

    lake = LakeResource(root=str(tmp_path))
    lake.write_partition("t", pl.DataFrame({"x": [1]}), {"shard": "s0"})
    held = lake.table("t")
    assert lake.version("t") == held.version() == 1
    write_deltalake(str(tmp_path / "t"), pl.DataFrame({"x": [2], "shard": ["s1"]}).to_arrow(), mode="append",
                    partition_by=["shard"])  # another writer
    assert lake.version("t") == 2 and sorted(lake.read("t")["x"].to_list()) == [1, 2]
    assert held.version() == 1 and pl.scan_delta(held).collect()["x"].to_list() == [1]
    assert set(lake.partition_files("t", {"shard": "s1"})) == {
        f.rsplit("/", 1)[-1] for f in lake.table("t").file_uris() if "shard=s1" in f}

    shutil.rmtree(tmp_path / "t")  # and made again by another writer, one commit so far
    write_deltalake(str(tmp_path / "t"), pl.DataFrame({"x": [7], "shard": ["s0"]}).to_arrow(), partition_by=["shard"])
    assert lake.version("t") == 0 and lake.read("t")["x"].to_list() == [7]
    v = lake.write_partition("t", pl.DataFrame({"x": [8]}), {"shard": "s0"}, mode="append")
    assert lake.version("t") == v == lake.table("t").version() and sorted(lake.read("t")["x"].to_list()) == [7, 8]
    shutil.rmtree(tmp_path / "t")
    assert not lake.exists("t") and lake.read("t").height == 0
