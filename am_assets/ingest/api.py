"""ingest's public surface: what other stages import (dedup's benchmark loader, distill's import
teachers) and what the top-level package gathers (source data versions). Everything else in
am_assets/ingest/ is internal (tests/test_layers.py)."""

from am_assets.ingest.adapters import (FieldError, humaneval_path, humaneval_rows, normalize_tests_fields,
                                       reasoning_gym_rows)
from am_assets.ingest.assets import clean_queries
from am_assets.ingest.fields import _MISSING as MISSING
from am_assets.ingest.fields import get_path
from am_assets.ingest.logic import header_problems, ingest_source, source_fingerprint, source_versions
from am_assets.ingest.readers import RowError, read_records

__all__ = ["FieldError", "MISSING", "RowError", "clean_queries", "get_path", "header_problems", "humaneval_path",
           "humaneval_rows", "ingest_source", "normalize_tests_fields", "read_records", "reasoning_gym_rows",
           "source_fingerprint", "source_versions"]
