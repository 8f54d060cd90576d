"""dedup's public surface: benchmarks as ingest's preview and the top-level package need them.
Everything else in am_assets/dedup/ is internal (tests/test_layers.py)."""

from am_assets.dedup.bench_sources import benchmark_fingerprint, benchmark_versions, file_source, load_benchmark

__all__ = ["benchmark_fingerprint", "benchmark_versions", "file_source", "load_benchmark"]
