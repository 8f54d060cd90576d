"""query_embeddings [source], benchmarks [benchmark] -> unique_queries [shard]."""
import dagster as dg
import polars as pl

from am_assets.dedup.bench_sources import benchmark_fingerprint, load_benchmark
from am_assets.dedup.logic import contamination_summary, dedup_summary
from am_assets.dedup.state import as_list_column, embed_with_cache, ensure_state, read_state, with_text_hash
from am_assets.ingest.assets import clean_queries
from am_assets.core.partitions import benchmark_partitions, shard_partitions, source_partitions
from am_assets.core.versions import benchmark_versions, known_versions
from resources.embedder import EmbedderResource
from resources.lake import LakeResource, materialize_result
from resources.pipeline import PipelineConfigResource

GROUP = "dedup"


@dg.asset(partitions_def=source_partitions, deps=[clean_queries], group_name=GROUP, code_version="1",
          description="Normalized-text embeddings of one source's kept rows; cached by (text hash, embedder).")
def query_embeddings(context: dg.AssetExecutionContext, lake: LakeResource,
                     embedder: EmbedderResource) -> dg.MaterializeResult:
    partition = {"source": context.partition_key}
    kept = (lake.scan("clean_queries", partition).filter(pl.col("drop_reason").is_null())
            .select("query_id", "question").collect())
    texts = with_text_hash(kept)
    vecs, stats = embed_with_cache(lake, embedder, texts, context.log.info, context)
    out = texts.select("query_id", "text_hash").with_columns(
        embedder=pl.lit(stats["embedder"]), embedding=as_list_column(vecs))
    version = lake.write_partition("query_embeddings", out, partition, context=context)
    context.log.info(f"{context.partition_key}: {out.height} rows; embedded {stats['embedded_new']} new texts, "
                     f"reused {stats['reused']} from the cache")
    return materialize_result(lake, "query_embeddings", out, version, {
        **stats, "dimension": vecs.shape[1] if vecs.ndim == 2 else 0})


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


def build_unique_queries(n_shards: int) -> dg.AssetsDefinition:
    @dg.asset(
        name="unique_queries", partitions_def=shard_partitions(n_shards), group_name=GROUP, code_version="1",
        deps=[dg.AssetDep(query_embeddings, partition_mapping=dg.AllPartitionMapping()),
              dg.AssetDep(benchmarks, partition_mapping=dg.AllPartitionMapping())],
        description="Every kept row with its semantic cluster, representative flag and benchmark "
                    "contamination evidence; shard = hash(query_id) mod N.")
    def unique_queries(context: dg.AssetExecutionContext, lake: LakeResource, pipeline: PipelineConfigResource,
                       embedder: EmbedderResource) -> dg.MaterializeResult:
        cfg = pipeline.load()
        key, stats = ensure_state(lake, cfg, embedder, context.log.info, context)
        state = read_state(lake)  # the global summary is cheap next to the computation it summarizes
        rows = state.filter(pl.col("shard") == context.partition_key)
        version = lake.write_partition("unique_queries", rows, {"shard": context.partition_key}, context=context)
        shard_dups = dict(rows.filter(~pl.col("representative")).group_by("source").len().sort("source").iter_rows())
        context.log.info(f"{context.partition_key}: {rows.height} rows, {rows['representative'].sum()} representatives, "
                         f"{rows['contaminated_by'].is_not_null().sum()} contaminated")
        return materialize_result(lake, "unique_queries", rows, version, {
            "dedup_state_key": key,
            "computed_global_state": stats is not None,
            **({"global_state_stats": dg.MetadataValue.json(stats)} if stats else {}),
            "representatives": int(rows["representative"].sum()),
            "usable": int((rows["representative"] & rows["contaminated_by"].is_null()).sum()),
            "duplicates_removed_by_source": dg.MetadataValue.json(shard_dups),
            "contaminated": int(rows["contaminated_by"].is_not_null().sum()),
            "global": dg.MetadataValue.json(dedup_summary(state)),
            "contaminated_by_benchmark_method": dg.MetadataValue.json(contamination_summary(state)),
        })

    return unique_queries
