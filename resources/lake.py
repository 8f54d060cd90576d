"""The lake: every table is a Delta table under one root, written one Dagster partition at a time.

We own this instead of using dagster-deltalake-polars because that IO manager fails for dynamic x
static multi-partitions and for fan-in loads (../shared/reference/dagster.md, section 1).

Writes are safe when several processes write one table at once (measured with deltalake 1.6.6, see
tests/test_lake_concurrency.py): delta-rs detects a conflicting partition overwrite (CommitFailedError)
but re-commits a losing *table creation* as a later version with no conflict check, so two first
writes both stay; two whole-table overwrites of a table with no files both stay too. Hence: the table
is created empty first (losing that race = it exists), every write starts from a snapshot and is
redone on a conflict, and keyed appends insert only keys absent from the snapshot they commit on.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
from deltalake import ColumnProperties, CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

COMMIT_ATTEMPTS = 10  # each round of conflicts lets at least one writer through
COMPACT_FILES = 8  # a partition grown by appends past this many data files is rewritten as one
WRITE_BATCH_BYTES = 64 << 20  # record batches handed to delta-rs (record_batches)
# Parquet row groups of at most this many rows: a reader filtering on a column the rows are ordered by
# (dedup_clusters by shard) skips the other row groups by their statistics
ROW_GROUP_ROWS = 128 * 1024
# Opening a table replays the JSON commits since its last checkpoint. delta-rs checkpoints every 100
# commits by default, and a lake takes a commit per partition per run, so an open cost ~25 ms at 65
# commits (4 ms after a checkpoint), several times in each of the hundreds of runs of an incremental build.
TABLE_PROPERTIES = {"delta.checkpointInterval": "10"}


# The newest snapshot of each local table, kept per thread and process and brought up to date by
# reading only the commits since (~1 ms, where opening replays the log from its checkpoint: ~6-10 ms).
# The runner opened tables ~6 times a run, ~500 times to add 1% queries at 16 shards x 2 teachers.
# Only LakeResource's own methods use it, each within the call: `table()` still hands out a snapshot
# of its own, which later reads and writes in the same process do not move.
_NEWEST = threading.local()


_SAMPLE_ROWS = 4096


def writer_properties(df: pl.DataFrame) -> WriterProperties:
    """Row groups of ROW_GROUP_ROWS, SNAPPY, and no dictionary for the string columns whose values are
    mostly distinct (ids, hashes, texts, JSON details): the Parquet writer builds each column's
    dictionary before it finds it too big and falls back (a 242k-row verification partition wrote in
    ~0.23 s, ~0.18 s without, and smaller)."""
    sample = df.head(_SAMPLE_ROWS)
    distinct = [c for c, t in sample.schema.items() if t in (pl.String, pl.Binary) and sample.height >= 64
                and sample[c].n_unique() > sample.height // 2]
    # SNAPPY named: WriterProperties() alone writes uncompressed files (delta-rs's default is SNAPPY)
    return WriterProperties(max_row_group_size=ROW_GROUP_ROWS, compression="SNAPPY", column_properties={
        c: ColumnProperties(dictionary_enabled=False) for c in distinct} or None)


def _log_identity(uri: str) -> tuple[int, int, int] | None:
    """Which table lives at `uri`: its first commit file's inode, mtime and size (a table removed and
    created again at the same path has a new one); None when that file is gone (log cleanup)."""
    try:
        st = os.stat(os.path.join(uri, "_delta_log", f"{0:020d}.json"))
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class CommitConflict(RuntimeError):
    """A write lost to concurrent writers COMMIT_ATTEMPTS times in a row."""


def _redone_on_conflict(write: Callable[[], int], table: str, where: str) -> int:
    """`write()` (which reads the newest snapshot itself), redone after each lost commit with jitter so
    rivals retry apart; CommitConflict after COMMIT_ATTEMPTS losses in a row."""
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return write()
        except CommitFailedError as e:
            error = e
            time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
    raise CommitConflict(f"lake table {table} ({where}): {COMMIT_ATTEMPTS} commits in a row lost to concurrent "
                         f"writers; nothing was written by this attempt. Last error: {error}") from error


def _set_properties(dt: DeltaTable) -> None:
    """TABLE_PROPERTIES on a table created before them (one commit, once); a rival's commit in
    between just leaves it to the next write."""
    if all(dt.metadata().configuration.get(k) == v for k, v in TABLE_PROPERTIES.items()):
        return
    try:
        dt.alter.set_table_properties(TABLE_PROPERTIES, raise_if_not_exists=False)
    except (CommitFailedError, DeltaError):
        pass


def _quote(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def partition_predicate(partition: Mapping[str, str]) -> str:
    return " AND ".join(f"{col} = {_quote(val)}" for col, val in sorted(partition.items()))


def content_hash(df: pl.DataFrame, key: list[str] | None = None) -> str:
    """Order-independent hash of a frame's content (schema included).

    Row hashes are sorted, so the same rows in another order hash the same; an identical rewrite
    therefore keeps the data version and does not make downstream partitions stale.
    """
    h = hashlib.blake2b(digest_size=12)
    h.update(repr(sorted((c, str(t)) for c, t in df.schema.items())).encode())
    if df.height:
        frame = df.select(sorted(df.columns))
        # a slice at a time (a row's hash is its own): hashing 1M rows of 256-float lists at once held
        # another 1.3 GB
        step = _rows_per(frame, WRITE_BATCH_BYTES)
        row_hashes = pl.concat([frame.slice(i, step).hash_rows(seed=0) for i in range(0, frame.height, step)]).sort()
        h.update(row_hashes.to_numpy().tobytes())
    return h.hexdigest()


def _rows_per(df: pl.DataFrame, batch_bytes: int) -> int:
    """Rows of `df` in about `batch_bytes` of it."""
    return max(1, int(df.height * batch_bytes / max(df.estimated_size(), 1)))


def record_batches(df: pl.DataFrame, batch_bytes: int = WRITE_BATCH_BYTES) -> pa.RecordBatchReader:
    """The frame as a stream of record batches of about `batch_bytes` each, for delta-rs. Handed a
    whole frame (`DataFrame.write_delta`), its writer held ~2.8 times the frame: a 4.1 GB peak and
    3.7 s for a 1M-row partition of 256-float embeddings, 2.7 GB and 1.7 s as 64 MB batches."""
    table = df.to_arrow()
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=_rows_per(df, batch_bytes)))


def hash_sum(hashes: pl.Series) -> int:
    """Order-free fingerprint of rows from their 64-bit hashes: the wrapping sum, as a signed 64-bit
    integer (Delta has no unsigned type). The sums of parts add up to the whole's (add_hash_sums), so
    a fingerprint or a data version follows from the stored sum and the new rows."""
    return int(hashes.to_numpy().sum(dtype=np.uint64).view(np.int64)) if hashes.len() else 0


def add_hash_sums(*sums: int) -> int:
    return int(np.array(sums, dtype=np.int64).sum())  # numpy integer arrays wrap


def run_commit_metadata(context: dg.AssetExecutionContext | None) -> dict[str, str]:
    """Run id, asset key, partition key and code version, for the Delta commit."""
    if context is None:
        return {}
    meta = {"dagster_run_id": context.run.run_id}
    try:
        key = context.asset_key
        meta["dagster_asset_key"] = key.to_user_string()
        meta["dagster_code_version"] = context.assets_def.code_versions_by_key.get(key) or ""
    except Exception:  # an op context with several assets: no single key
        pass
    if context.has_partition_key:
        meta["dagster_partition"] = str(context.partition_key)
    return meta


class LakeResource(dg.ConfigurableResource):
    """Delta tables under `root` (a local folder or s3:// gs:// az:// with `storage_options`)."""

    root: str = "lake"
    storage_options: dict[str, str] = {}

    def uri(self, table: str) -> str:
        return f"{self.root.rstrip('/')}/{table}"

    def _opts(self) -> dict[str, str] | None:
        return self.storage_options or None

    def table(self, table: str, version: int | None = None) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri(table), version=version, storage_options=self._opts())
        except TableNotFoundError:
            return None

    def _newest(self, table: str) -> DeltaTable | None:
        """The table's newest snapshot, for use within one call (see _NEWEST)."""
        uri = self.uri(table)
        if self.storage_options or "://" in uri:  # an object store: no cheap check of which table it is
            return self.table(table)
        tables = _NEWEST.__dict__.setdefault("tables", {})
        key = (os.getpid(), uri)  # a forked worker must not share the parent's Rust objects
        kept = tables.get(key)
        identity = _log_identity(uri)
        if kept is not None and identity is not None and kept[1] == identity:
            kept[0].update_incremental()
            return kept[0]
        tables.pop(key, None)
        dt = self.table(table)
        if dt is not None and identity is not None:
            tables[key] = (dt, identity)
        return dt

    def exists(self, table: str) -> bool:
        return self._newest(table) is not None

    def version(self, table: str) -> int | None:
        dt = self._newest(table)
        return None if dt is None else dt.version()

    def write_partition(
        self,
        table: str,
        df: pl.DataFrame,
        partition: Mapping[str, str] | None,
        *,
        context: dg.AssetExecutionContext | None = None,
        mode: str = "overwrite",
        extra_metadata: Mapping[str, Any] | None = None,
        key: Sequence[str] | None = None,
    ) -> int:
        """Overwrite (or append to) exactly one partition; returns the Delta version of this commit.

        `partition` maps partition columns to values; they are added as string columns when the
        frame lacks them. `None` writes an unpartitioned table (whole-table overwrite). With `key`
        (append only), rows whose key the partition already holds are not written: a cache stays
        one row per key when several processes fill it at once. A commit that loses to a concurrent
        writer is redone against the new snapshot (bounded, with jitter), else CommitConflict.
        """
        if key and mode != "append":
            raise ValueError("key= is for mode='append' (an overwrite replaces the partition anyway)")
        partition = dict(partition or {})
        df = df.with_columns([pl.lit(v, dtype=pl.String).alias(k) for k, v in partition.items()])
        if key:
            df = df.unique(list(key), keep="first", maintain_order=True)
        metadata = run_commit_metadata(context)
        metadata.update({k: str(v) for k, v in (extra_metadata or {}).items()})
        options: dict[str, Any] = {"schema_mode": "merge"}
        if partition:
            options["partition_by"] = sorted(partition)
            if mode == "overwrite":
                options["predicate"] = partition_predicate(partition)
        elif mode == "overwrite":
            options["schema_mode"] = "overwrite"
        def commit() -> int:
            dt = self._newest(table) or self._create(table, df, options.get("partition_by"), metadata)
            _set_properties(dt)
            return self._commit(dt, df, partition, mode, options, metadata, key)

        return _redone_on_conflict(commit, table, partition_predicate(partition) if partition else "whole table")

    def delete_rows(self, table: str, partition: Mapping[str, str], column: str, values: Sequence[str], *,
                    context: dg.AssetExecutionContext | None = None) -> int:
        """Delete the partition's rows whose `column` is in `values` (a Delta DELETE: only the files that
        hold such rows are rewritten); returns the Delta version after it. Conflicts are redone."""
        metadata = run_commit_metadata(context)
        predicate = partition_predicate(partition) + f" AND {column} IN ({', '.join(_quote(v) for v in values)})"
        def delete() -> int:
            dt = self._newest(table)
            if dt is None or not values:
                return -1 if dt is None else dt.version()
            dt.delete(predicate, commit_properties=CommitProperties(custom_metadata=metadata))
            return dt.version()

        return _redone_on_conflict(delete, table, partition_predicate(partition))

    def file_count(self, table: str, partition: Mapping[str, str]) -> int:
        """Data files of the partition in the current version (appends add one each)."""
        return len(self.partition_files(table, partition))

    def partition_files(self, table: str, partition: Mapping[str, str], dt: DeltaTable | None = None) -> dict[str, str]:
        """File name -> URI of the partition's data files in the snapshot `dt` (default: the newest).
        A data file is never modified, and delta-rs names each new one with a fresh UUID: the same
        name in two snapshots holds the same rows."""
        dt = dt if dt is not None else self._newest(table)
        if dt is None:
            return {}
        uris = dt.file_uris(file_pruning_predicate=partition_predicate(partition))
        return {uri.rsplit("/", 1)[-1]: uri for uri in uris}

    def scan_files(self, dt: DeltaTable, uris: Sequence[str]) -> pl.LazyFrame | None:
        """The Parquet rows of some of `dt`'s data files (column `_file`: the file's URI), or None when
        the table's protocol asks readers for more than Parquet (see read_files)."""
        if dt.protocol().min_reader_version > 1 or not uris:
            return None
        return pl.scan_parquet(list(uris), storage_options=self._opts(), include_file_paths="_file",
                               missing_columns="insert", extra_columns="ignore")

    def read_files(self, dt: DeltaTable, uris: Sequence[str], partition: Mapping[str, str]) -> pl.DataFrame | None:
        """The rows of some of a partition's data files, with the table's columns and types (as `read`
        gives them); None when the table's protocol asks readers for more than Parquet (deletion
        vectors, column mapping): then only a Delta reader may read them."""
        if dt.protocol().min_reader_version > 1:
            return None
        schema = pl.scan_delta(dt).collect_schema()
        if not uris:
            return pl.DataFrame(schema=schema)
        # file by file: files written before and after a schema merge hold different columns
        df = pl.concat([pl.read_parquet(uri, storage_options=self._opts()) for uri in uris], how="diagonal_relaxed")
        return df.with_columns(pl.lit(partition.get(c), pl.String).alias(c) for c in schema.names()
                               if c not in df.columns).select(schema.names()).cast(dict(schema))

    def overwrite_from_parquet(self, table: str, paths: Sequence[str], *,
                               context: dg.AssetExecutionContext | None = None,
                               extra_metadata: Mapping[str, Any] | None = None,
                               append_to: int | None = None) -> int:
        """Whole-table overwrite (unpartitioned) with the rows of staged Parquet files, streamed in
        batches into one Delta commit: a table larger than memory is written in bounded memory.
        The files must share one schema. Same commit rules as write_partition(table, df, None).
        `append_to`: append the rows instead, on the condition that the table is still at that
        version (else CommitConflict: the rows were chosen against that version)."""
        import pyarrow.dataset as pads
        from deltalake import write_deltalake

        metadata = run_commit_metadata(context)
        metadata.update({k: str(v) for k, v in (extra_metadata or {}).items()})
        sample = pl.read_parquet(paths[0], n_rows=_SAMPLE_ROWS)
        empty, writer = sample.head(0), writer_properties(sample)
        def commit() -> int:
            dt = self._newest(table) or self._create(table, empty, None, metadata)
            if append_to is not None and dt.version() != append_to:
                raise CommitConflict(f"lake table {table}: written by another run (version {dt.version()}, "
                                     f"expected {append_to}) while rows were chosen to append; run it again")
            _set_properties(dt)
            reader = pads.dataset(list(paths), format="parquet").scanner(batch_size=8192).to_reader()
            props = CommitProperties(custom_metadata=metadata, max_commit_retries=0)
            if append_to is None:
                write_deltalake(dt, reader, mode="overwrite", schema_mode="overwrite", commit_properties=props,
                                writer_properties=writer)
            else:
                write_deltalake(dt, reader, mode="append", commit_properties=props, writer_properties=writer)
            return dt.version()

        return _redone_on_conflict(commit, table, "whole table")

    def _create(self, table: str, df: pl.DataFrame, partition_by, metadata: dict[str, str]) -> DeltaTable:
        """Create the empty table; losing that race to another process means it exists: fine."""
        props = CommitProperties(custom_metadata=metadata, max_commit_retries=0)  # never a second create
        try:
            df.head(0).write_delta(self.uri(table), mode="error", storage_options=self._opts(),
                                   delta_write_options={"partition_by": partition_by, "commit_properties": props,
                                                        "configuration": TABLE_PROPERTIES})
        except (CommitFailedError, DeltaError) as e:
            if self.table(table) is None:  # not the race: a real error
                raise e
        return DeltaTable(self.uri(table), storage_options=self._opts())

    def _commit(self, dt: DeltaTable, df: pl.DataFrame, partition: dict[str, str], mode: str,
                options: dict[str, Any], metadata: dict[str, str], key: Sequence[str] | None) -> int:
        """One write against the snapshot `dt`; its version afterwards is this commit's."""
        # delta-rs redoes a commit that lost the race itself when its conflict check passes. That check
        # is right for partition overwrites (a rival's rows in the partition = conflict) but lets two
        # whole-table overwrites of an empty table both land, and knows nothing of keys: those two
        # commit only on the snapshot they read, else CommitFailedError and write_partition redoes them.
        retries = 0 if mode == "overwrite" and not partition else None
        if key:
            have = pl.scan_delta(dt)  # the keys of the very snapshot this commit is based on
            for col, val in partition.items():
                have = have.filter(pl.col(col) == val)
            df = df.join(have.select(list(key)).collect(), on=list(key), how="anti", nulls_equal=True)
            if df.height == 0:
                return dt.version()
            retries = 0
        props = CommitProperties(custom_metadata=metadata, max_commit_retries=retries)
        write_deltalake(dt, record_batches(df), mode=mode, commit_properties=props,
                        writer_properties=writer_properties(df), **options)
        return dt.version()

    def scan(
        self,
        table: str,
        filters: Mapping[str, str | list[str]] | None = None,
        *,
        version: int | None = None,
        dt: DeltaTable | None = None,
    ) -> pl.LazyFrame:
        """A LazyFrame over the table (optionally at an older version, or over the opened table `dt`:
        each open replays the Delta log), filtered by partition values."""
        lf = pl.scan_delta(dt) if dt is not None else pl.scan_delta(self.uri(table), version=version,
                                                                     storage_options=self._opts())
        for col, val in (filters or {}).items():
            lf = lf.filter(pl.col(col).is_in(val) if isinstance(val, list) else pl.col(col) == val)
        return lf

    def read(self, table: str, filters: Mapping[str, str | list[str]] | None = None) -> pl.DataFrame:
        """The filtered table, or an empty frame when the table does not exist yet."""
        dt = self._newest(table)
        return pl.DataFrame() if dt is None else self.scan(table, filters, dt=dt).collect()

    def history(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        dt = self._newest(table)
        return [] if dt is None else dt.history(limit)


def table_schema(df: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(c, str(t)) for c, t in df.schema.items()])


def materialize_result(
    lake: LakeResource,
    table: str,
    df: pl.DataFrame,
    version: int,
    metadata: Mapping[str, Any] | None = None,
    *,
    column_lineage: dg.TableColumnLineage | None = None,
    check_results: Sequence[dg.AssetCheckResult] = (),
) -> dg.MaterializeResult:
    """The standard result of an asset that wrote one partition: counts, schema, version, data version
    (and the results of checks evaluated in the asset's step)."""
    meta: dict[str, Any] = {
        "dagster/uri": lake.uri(table),
        "dagster/table_name": f"lake.{table}",
        "dagster/row_count": df.height,
        "dagster/column_schema": table_schema(df),
        "delta_version": version,
    }
    if column_lineage is not None:
        meta["dagster/column_lineage"] = column_lineage
    meta.update(metadata or {})
    return dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(content_hash(df)),
                                check_results=list(check_results))
