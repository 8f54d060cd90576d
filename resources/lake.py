"""The lake: every table is a Delta table under one root, written one Dagster partition at a time.

We own this instead of using dagster-deltalake-polars because that IO manager fails for dynamic x
static multi-partitions and for fan-in loads (../shared/reference/dagster.md, section 1).
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

import dagster as dg
import polars as pl
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import TableNotFoundError


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
        cols = sorted(df.columns)
        row_hashes = df.select(cols).hash_rows(seed=0).sort()
        h.update(row_hashes.to_numpy().tobytes())
    return h.hexdigest()


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

    def table(self, table: str) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri(table), storage_options=self._opts())
        except TableNotFoundError:
            return None

    def exists(self, table: str) -> bool:
        return self.table(table) is not None

    def version(self, table: str) -> int | None:
        dt = self.table(table)
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
    ) -> int:
        """Overwrite (or append to) exactly one partition; returns the new Delta version.

        `partition` maps partition columns to values; they are added as string columns when the
        frame lacks them. `None` writes an unpartitioned table (whole-table overwrite).
        """
        partition = dict(partition or {})
        df = df.with_columns([pl.lit(v, dtype=pl.String).alias(k) for k, v in partition.items()])
        metadata = run_commit_metadata(context)
        metadata.update({k: str(v) for k, v in (extra_metadata or {}).items()})
        options: dict[str, Any] = {
            "schema_mode": "merge",
            "commit_properties": CommitProperties(custom_metadata=metadata),
        }
        if partition:
            options["partition_by"] = sorted(partition)
            if mode == "overwrite":
                options["predicate"] = partition_predicate(partition)
        elif mode == "overwrite":
            options["schema_mode"] = "overwrite"
        df.write_delta(self.uri(table), mode=mode, storage_options=self._opts(), delta_write_options=options)
        return self.version(table)

    def scan(
        self,
        table: str,
        filters: Mapping[str, str | list[str]] | None = None,
        *,
        version: int | None = None,
    ) -> pl.LazyFrame:
        """A LazyFrame over the table (optionally at an older version), filtered by partition values."""
        lf = pl.scan_delta(self.uri(table), version=version, storage_options=self._opts())
        for col, val in (filters or {}).items():
            lf = lf.filter(pl.col(col).is_in(val) if isinstance(val, list) else pl.col(col) == val)
        return lf

    def read(self, table: str, filters: Mapping[str, str | list[str]] | None = None) -> pl.DataFrame:
        """The filtered table, or an empty frame when the table does not exist yet."""
        if not self.exists(table):
            return pl.DataFrame()
        return self.scan(table, filters).collect()

    def history(self, table: str, limit: int | None = None) -> list[dict[str, Any]]:
        dt = self.table(table)
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
) -> dg.MaterializeResult:
    """The standard result of an asset that wrote one partition: counts, schema, version, data version."""
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
    return dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(content_hash(df)))
