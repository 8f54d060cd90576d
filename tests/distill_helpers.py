"""Shared set-up for the distillation tests: a unique_queries table written the way the dedup stage
does (contract columns), teacher entries with tiny settings, and Dagster staleness lookups."""

from __future__ import annotations

import os

import dagster as dg
import polars as pl
import pytest

from am_assets.core.schema import QUERY_SCHEMA, query_id
from tests.conftest import BASE_ENGINE

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the machine is shared

QUESTIONS = [f"What is {a} + {b}? Answer with a number." for a, b in
             [(2, 3), (7, 5), (10, 11), (4, 4), (9, 8), (12, 30), (6, 7), (15, 15), (21, 3), (8, 13)]]


def unique_queries_frame(questions: list[str], shard: str, *, excluded: int = 0) -> pl.DataFrame:
    """Contract columns of `unique_queries`; the first `excluded` rows are made ineligible (one a
    non-representative duplicate, the next contaminated)."""
    rows = []
    for i, q in enumerate(questions):
        qid = query_id(q)
        rows.append({**{c: None for c in QUERY_SCHEMA}, "query_id": qid, "source": "test", "category": "math",
                     "question": q, "metadata": "{}", "cluster_id": qid,
                     "representative": not (i < excluded and i % 2 == 0),
                     "duplicate_of": None,
                     "contaminated_by": ('[{"benchmark": "b", "item_id": "1", "method": "ngram", "score": 1.0}]'
                                         if i < excluded and i % 2 == 1 else None)})
    schema = {**QUERY_SCHEMA, "cluster_id": pl.String, "representative": pl.Boolean, "duplicate_of": pl.String,
              "contaminated_by": pl.String}
    return pl.DataFrame(rows, schema=schema)


def write_unique_queries(lake, by_shard: dict[str, list[str]], excluded: int = 0) -> None:
    for shard, questions in by_shard.items():
        lake.write_partition("unique_queries", unique_queries_frame(questions, shard, excluded=excluded),
                             {"shard": shard})


def vllm_teacher(name: str, temperature: float, *, n: int = 2, max_tokens: int = 32, chunk_size: int = 2) -> dict:
    return {"name": name, "kind": "vllm", **BASE_ENGINE, "chunk_size": chunk_size,
            "sampling": {"n": n, "temperature": temperature, "max_tokens": max_tokens, "seed": 0}}


def mkey(teacher: str, shard: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"teacher": teacher, "shard": shard})


def stale_status(defs: dg.Definitions, instance, asset: str, partition) -> str:
    from resources.dagster_internals import Staleness

    return Staleness(instance, defs.resolve_asset_graph()).status(dg.AssetKey(asset), partition)


def partition_files(lake, table: str, teacher: str) -> set[str]:
    """Data files of one teacher's partitions in the table's current version."""
    return {f for f in lake.table(table).file_uris() if f"teacher={teacher}/" in f}


@pytest.fixture(scope="module")
def vllm_engines(vllm_pool):
    """The session's model pool, for a module's projects (`Project(root, pool=...)`): the engine stays
    loaded across their materializations, as in the CLI runner."""
    return vllm_pool
