"""Stage 2: query_embeddings [source], benchmarks [benchmark] -> unique_queries [shard]."""

from am_assets.dedup.assets import benchmark_files, benchmarks, build_unique_queries, query_embeddings


def build(cfg) -> list:
    return [query_embeddings, benchmark_files, benchmarks, build_unique_queries(cfg.shards)]
