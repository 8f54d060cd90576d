"""query_embeddings [source], benchmarks [benchmark] -> dedup_clusters -> unique_queries [shard]."""
import dagster as dg
import polars as pl

from am_assets.dedup.bench_sources import benchmark_fingerprint, load_benchmark
from am_assets.dedup.logic import contamination_summary, dedup_summary
from am_assets.dedup.clusters import OUTPUT_COLUMNS, TABLE, compute_clusters, input_key, stored_keys
from am_assets.dedup.embeddings import embedding_rows, with_text_hash
from am_assets.ingest.api import clean_queries
from am_assets.core.partitions import benchmark_partitions, shard_partitions, source_partitions
from am_assets.core.versions import known_versions
from am_assets.dedup.bench_sources import benchmark_versions
from resources.embedder import EmbedderResource
from resources.lake import LakeResource, content_hash, materialize_result
from resources.pipeline import PipelineConfigResource

GROUP = "dedup"


@dg.asset(partitions_def=source_partitions, deps=[clean_queries], group_name=GROUP, code_version="1",
          description="Normalized-text embeddings of one source's kept rows; cached by (text hash, embedder). "
                      "Near-exact duplicates within the source borrow an embedding (`embedded_as`).")
def query_embeddings(context: dg.AssetExecutionContext, lake: LakeResource, embedder: EmbedderResource,
                     pipeline: PipelineConfigResource) -> dg.MaterializeResult:
    d = pipeline.load().dedup
    partition = {"source": context.partition_key}
    kept = (lake.scan("clean_queries", partition).filter(pl.col("drop_reason").is_null())
            .select("query_id", "question").collect())
    texts = with_text_hash(kept)
    rows, stats = embedding_rows(lake, embedder, texts, context.log.info, context,
                                 near_exact=d.near_exact_jaccard if d.near_exact else None)
    out = texts.select("query_id", "text_hash").with_columns(
        embedder=pl.lit(stats["embedder"]), embedding=rows["embedding"], embedded_as=rows["embedded_as"])
    del rows
    version = lake.write_partition("query_embeddings", out, partition, context=context)
    context.log.info(f"{context.partition_key}: {out.height} rows; embedded {stats['embedded_new']} new texts, "
                     f"reused {stats['reused']} from the cache")
    return materialize_result(lake, "query_embeddings", out, version, {
        **stats, "dimension": int(out["embedding"].list.len().max() or 0)})


@dg.observable_source_asset(partitions_def=benchmark_partitions, group_name=GROUP,
                            description="The configured benchmarks; data version = hash of settings + file bytes.")
def benchmark_files(context, pipeline: PipelineConfigResource) -> dg.DataVersionsByPartition:
    return known_versions(context, "benchmark", benchmark_versions(pipeline.load()))


@dg.asset(partitions_def=benchmark_partitions, deps=[benchmark_files], group_name=GROUP, code_version="1",
          description="One evaluation set as normalized rows (QUERY_SCHEMA + item_id + benchmark).")
def benchmarks(context: dg.AssetExecutionContext, lake: LakeResource,
               pipeline: PipelineConfigResource) -> dg.MaterializeResult:
    cfg = pipeline.load()
    bench = cfg.benchmark(context.partition_key)
    rows, errors = load_benchmark(bench, cfg.cleaning)
    if errors:
        context.log.warning(f"{bench.name}: {len(errors)} items could not be read; first: {errors[0]}")
    if rows.height == 0:
        raise ValueError(f"benchmark {bench.name}: no items read from {bench.path or bench.kind}")
    version = lake.write_partition("benchmarks", rows, {"benchmark": bench.name}, context=context)
    context.log.info(f"{bench.name}: {rows.height} items")
    return materialize_result(lake, "benchmarks", rows, version, {
        "items": rows.height, "unreadable_items": len(errors),
        "with_reference_answer": rows["reference_answer"].is_not_null().sum(),
        "with_tests": rows["test_cases"].is_not_null().sum(),
        "benchmark_fingerprint": benchmark_fingerprint(bench),
    })


# clean_queries too: a changed reference answer (same question) leaves query_embeddings as it was
@dg.asset(deps=[dg.AssetDep(query_embeddings, partition_mapping=dg.AllPartitionMapping()),
                dg.AssetDep(clean_queries, partition_mapping=dg.AllPartitionMapping()),
                dg.AssetDep(benchmarks, partition_mapping=dg.AllPartitionMapping())],
          group_name=GROUP, code_version="1",
          description="Global dedup of every kept row: semantic cluster, representative, benchmark contamination "
                      "evidence and shard. Incremental: earlier clusters stay, only new texts are searched.")
def dedup_clusters(context: dg.AssetExecutionContext, lake: LakeResource, pipeline: PipelineConfigResource,
                   embedder: EmbedderResource) -> dg.MaterializeResult:
    cfg = pipeline.load()
    key = input_key(lake, cfg, embedder.embedder_id())
    stored = stored_keys(lake)
    if stored.get("dedup_input_key") == key:  # same inputs: the table is current, nothing is rewritten
        context.log.info(f"dedup_clusters: inputs unchanged (key {key}); table kept")
        return dg.MaterializeResult(
            metadata={"recomputed": False, "dedup_input_key": key, "delta_version": lake.version(TABLE)},
            data_version=dg.DataVersion(stored["dedup_data_version"]))
    table, stats, keys = compute_clusters(lake, cfg, embedder, context.log.info, context)
    # stored in shard order: each unique_queries run reads its shard's row groups only (row-group
    # statistics), not the whole table (~0.3 s of each of 16 runs at 1M queries, 0.03 s sorted)
    table = table.sort("shard", maintain_order=True)
    data_version = content_hash(table)
    version = lake.write_partition(TABLE, table, None, context=context,
                                   extra_metadata={**keys, "dedup_data_version": data_version})
    context.log.info(f"dedup_clusters: {table.height} rows, {stats['new_texts']} new texts; {stats}")
    result = materialize_result(lake, TABLE, table, version, {
        "recomputed": True, "dedup_input_key": key, "stats": dg.MetadataValue.json(stats),
        "representatives": int(table["representative"].sum()),
        "usable": int((table["representative"] & table["contaminated_by"].is_null()).sum()),
        "contaminated": int(table["contaminated_by"].is_not_null().sum()),
        "global": dg.MetadataValue.json(dedup_summary(table)),
        "contaminated_by_benchmark_method": dg.MetadataValue.json(contamination_summary(table)),
    })
    return result


def build_unique_queries(n_shards: int) -> dg.AssetsDefinition:
    @dg.asset(
        name="unique_queries", partitions_def=shard_partitions(n_shards), group_name=GROUP, code_version="1",
        deps=[dedup_clusters],
        description="The shard's rows of dedup_clusters: every kept row with its semantic cluster, representative "
                    "flag and benchmark contamination evidence; shard = hash(query_id) mod N.")
    def unique_queries(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        if not lake.exists(TABLE):
            raise ValueError("unique_queries: the dedup_clusters table does not exist yet; materialize dedup_clusters")
        rows = lake.scan(TABLE).filter(pl.col("shard") == context.partition_key).select(OUTPUT_COLUMNS).collect()
        version = lake.write_partition("unique_queries", rows, {"shard": context.partition_key}, context=context)
        shard_dups = dict(rows.filter(~pl.col("representative")).group_by("source").len().sort("source").iter_rows())
        context.log.info(f"{context.partition_key}: {rows.height} rows, {rows['representative'].sum()} representatives, "
                         f"{rows['contaminated_by'].is_not_null().sum()} contaminated")
        return materialize_result(lake, "unique_queries", rows, version, {
            "dedup_clusters_version": lake.version(TABLE),
            "representatives": int(rows["representative"].sum()),
            "usable": int((rows["representative"] & rows["contaminated_by"].is_null()).sum()),
            "duplicates_removed_by_source": dg.MetadataValue.json(shard_dups),
            "contaminated": int(rows["contaminated_by"].is_not_null().sum()),
        })

    return unique_queries
