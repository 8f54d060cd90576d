"""source_files -> raw_queries -> clean_queries, one dynamic partition per configured source."""
import dagster as dg

from am_assets.ingest.logic import clean_queries as clean_rules
from am_assets.ingest.logic import drop_counts, empty_source_warning, ingest_source, source_fingerprint, source_versions
from am_assets.ingest.select import SelectionStats
from am_assets.core.partitions import source_partitions
from am_assets.core.versions import known_versions
from resources.lake import LakeResource, materialize_result
from resources.pipeline import PipelineConfigResource

GROUP = "ingest"


@dg.observable_source_asset(partitions_def=source_partitions, group_name=GROUP,
                            description="The configured query sources; data version = hash of settings + file bytes.")
def source_files(context, pipeline: PipelineConfigResource) -> dg.DataVersionsByPartition:
    return known_versions(context, "source", source_versions(pipeline.load()))


@dg.asset(partitions_def=source_partitions, deps=[source_files], group_name=GROUP, code_version="1",
          description="Normalized query rows of one source; bad rows go to the `rejected_rows` table.")
def raw_queries(context: dg.AssetExecutionContext, lake: LakeResource,
                pipeline: PipelineConfigResource) -> dg.MaterializeResult:
    cfg = pipeline.load()
    source = cfg.source(context.partition_key)
    selection = SelectionStats()
    rows, rejected = ingest_source(source, cfg.cleaning, selection)
    partition = {"source": source.name}
    version = lake.write_partition("raw_queries", rows, partition, context=context)
    # always rewritten, so a fixed file also clears its old rejects
    lake.write_partition("rejected_rows", rejected, partition, context=context)
    if rejected.height:
        first = rejected.row(0, named=True)
        context.log.warning(
            f"{rejected.height} rows of {source.name} rejected; they are in lake table rejected_rows "
            f"(source={source.name}). First: {first['source_file']} row {first['source_row']} "
            f"field {first['field']}: {first['error']}")
    empty = empty_source_warning(source, rows, rejected, selection.filtered_out + selection.sampled_out)
    if empty:
        context.log.warning(empty)
    context.log.info(f"{source.name}: {rows.height} rows ingested, {rejected.height} rejected; selection "
                     f"{selection.as_metadata()}")
    return materialize_result(lake, "raw_queries", rows, version, {
        "rejected_rows": rejected.height,
        "empty_source": empty is not None,
        **({"warning": empty} if empty else {}),
        **selection.as_metadata(),
        "categories": dg.MetadataValue.json(dict(rows.group_by("category").len().iter_rows())),
        "source_fingerprint": source_fingerprint(source),
    })


@dg.asset(partitions_def=source_partitions, deps=[raw_queries], group_name=GROUP, code_version="1",
          description="Every raw row, with `drop_reason` null (kept) or the cleaning rule that fired.")
def clean_queries(context: dg.AssetExecutionContext, lake: LakeResource,
                  pipeline: PipelineConfigResource) -> dg.MaterializeResult:
    cfg = pipeline.load()
    partition = {"source": context.partition_key}
    raw = lake.scan("raw_queries", partition).collect()
    cleaned = clean_rules(raw, cfg.cleaning)
    version = lake.write_partition("clean_queries", cleaned, partition, context=context)
    counts = drop_counts(cleaned)
    kept = cleaned.height - sum(counts.values())
    context.log.info(f"{context.partition_key}: kept {kept} of {cleaned.height}; dropped {counts}")
    return materialize_result(lake, "clean_queries", cleaned, version, {
        "kept": kept,
        "dropped": dg.MetadataValue.json(counts),
    }, column_lineage=dg.TableColumnLineage(deps_by_column={
        "drop_reason": [dg.TableColumnDep(asset_key=raw_queries.key, column_name="question")],
    }))
