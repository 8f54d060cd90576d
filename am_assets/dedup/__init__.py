"""Stage 2: query_embeddings [source], benchmarks [benchmark] -> dedup_clusters -> unique_queries [shard]."""

from am_assets.dedup.assets import benchmark_files, benchmarks, build_unique_queries, dedup_clusters, query_embeddings


def build(cfg) -> list:
    return [query_embeddings, benchmark_files, benchmarks, dedup_clusters, build_unique_queries(cfg.shards)]
