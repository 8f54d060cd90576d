"""Stage 1: sources -> raw_queries -> clean_queries."""

from am_assets.ingest.assets import clean_queries, raw_queries, source_files


def build(cfg) -> list:
    return [source_files, raw_queries, clean_queries]
