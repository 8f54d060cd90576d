"""Lineage audit: from a training-mix row, a response id or a query id back to the raw row.

Every hop is a plain lookup in the lake; for each table we also report the Delta commit that wrote
the row's partition (Delta version, Dagster run id, code version), read from the commit metadata the
lake resource stamps on every write.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from resources.lake import LakeResource

# (table, key column, partition columns in Dagster key order)
CHAIN = [
    ("raw_queries", "query_id", ["source"]),
    ("clean_queries", "query_id", ["source"]),
    ("unique_queries", "query_id", ["shard"]),
    ("teacher_responses", "query_id", ["shard", "teacher"]),
    ("verification_outcomes", "query_id", ["shard", "teacher"]),
    ("difficulty_scores", "query_id", ["shard"]),
    ("training_mix", "query_id", []),
]

_SHOW = {
    "raw_queries": ["source", "source_file", "source_row", "category", "question", "reference_answer"],
    "clean_queries": ["source", "drop_reason"],
    "unique_queries": ["shard", "cluster_id", "representative", "duplicate_of", "contaminated_by"],
    "teacher_responses": ["teacher", "response_id", "sample_idx", "fingerprint", "model", "engine", "sampling",
                          "finish_reason", "truncated", "completion_tokens"],
    "verification_outcomes": ["teacher", "response_id", "verifier", "verifier_version", "status", "verify_score",
                              "passed", "details"],
    "difficulty_scores": None,  # everything
    "training_mix": ["response_id", "teacher", "stage", "selection_reason", "verify_score"],
}


def _commits(lake: LakeResource, table: str) -> list[dict[str, Any]]:
    return lake.history(table)


def partition_commit(history: list[dict[str, Any]], partition_key: str | None) -> dict[str, Any]:
    """The newest commit that wrote this partition (or the table, when unpartitioned)."""
    for entry in history:  # newest first
        if partition_key is None or entry.get("dagster_partition") == partition_key:
            return {"delta_version": entry.get("version"), "run_id": entry.get("dagster_run_id"),
                    "code_version": entry.get("dagster_code_version"), "timestamp": entry.get("timestamp")}
    return {}


def resolve_query_id(lake: LakeResource, ident: str) -> tuple[str | None, str | None]:
    """(query_id, response_id) for a query id, a response id, or a training-mix row id."""
    for table, col in (("teacher_responses", "response_id"), ("training_mix", "mix_row_id"),
                       ("training_mix", "response_id"), ("raw_queries", "query_id")):
        if not lake.exists(table):
            continue
        lf = lake.scan(table)
        names = lf.collect_schema().names()
        if col not in names:
            continue
        wanted = ["query_id"] + (["response_id"] if "response_id" in names else [])
        hit = lf.filter(pl.col(col) == ident).select(wanted).head(1).collect()
        if hit.height:
            return hit["query_id"][0], (hit["response_id"][0] if "response_id" in hit.columns else None)
    return None, None


def trace(lake: LakeResource, ident: str) -> dict[str, Any]:
    """{table: {"rows": [...], "commits": {partition: commit}}} along the chain for one id."""
    qid, response_id = resolve_query_id(lake, ident)
    if qid is None:
        raise KeyError(f"{ident!r} is not a query id, response id or training-mix row in {lake.root}")
    out: dict[str, Any] = {"query_id": qid, "response_id": response_id, "tables": {}}
    for table, key, parts in CHAIN:
        if not lake.exists(table):
            out["tables"][table] = {"missing": True}
            continue
        df = lake.scan(table).filter(pl.col(key) == qid).collect()
        if response_id and "response_id" in df.columns:
            df = df.filter(pl.col("response_id") == response_id)
        history = _commits(lake, table)
        commits = {}
        for row in df.select([p for p in parts if p in df.columns]).unique().iter_rows(named=True):
            pk = "|".join(row[p] for p in parts) if parts else None
            commits[pk or "<table>"] = partition_commit(history, pk)
        if not parts:
            commits["<table>"] = partition_commit(history, None)
        cols = _SHOW.get(table) or df.columns
        out["tables"][table] = {"rows": df.select([c for c in cols if c in df.columns]).to_dicts(),
                                "commits": commits}
    return out


def _fmt(value: Any, width: int = 160) -> str:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            value = json.dumps(json.loads(value))
        except json.JSONDecodeError:
            pass
    text = str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def render(chain: dict[str, Any]) -> str:
    lines = [f"query_id {chain['query_id']}" + (f"  response_id {chain['response_id']}" if chain["response_id"] else "")]
    for table, info in chain["tables"].items():
        lines.append(f"\n== {table}")
        if info.get("missing"):
            lines.append("   (table not materialized yet)")
            continue
        for part, c in info["commits"].items():
            lines.append(f"   commit [{part}]: delta v{c.get('delta_version')}  run {c.get('run_id')}  "
                         f"code_version {c.get('code_version')}")
        if not info["rows"]:
            lines.append("   (no rows for this id)")
        for row in info["rows"]:
            lines.append("   - " + "\n     ".join(f"{k}: {_fmt(v)}" for k, v in row.items()))
    return "\n".join(lines)
