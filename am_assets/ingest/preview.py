"""`am-distill validate --data`: read the first rows of every source and benchmark through the real
adapters, and say what a materialization would get: rows, rejects with their first errors, categories
and test layouts. Nothing is written."""

from __future__ import annotations

import json
from collections import Counter

import polars as pl

from am_assets.dedup.api import load_benchmark
from am_assets.ingest.logic import ingest_source
from am_assets.ingest.select import SelectionStats


def _layouts(rows: pl.DataFrame) -> dict[str, int]:
    found: Counter = Counter()
    for tests in rows["test_cases"].drop_nulls() if "test_cases" in rows.columns else []:
        try:
            found[json.loads(tests).get("type", "?")] += 1
        except (ValueError, AttributeError):
            found["unreadable"] += 1
    if "metadata" in rows.columns:
        found["multiple_choice"] = int(rows["metadata"].fill_null("").str.contains('"choices"').sum())
    return {k: v for k, v in found.items() if v}


def _summary(kind: str, name: str, rows: pl.DataFrame, errors: list[str], **extra) -> dict:
    cats = dict(Counter(rows["category"].to_list())) if rows.height else {}
    return {"kind": kind, "name": name, "rows": rows.height, "rejected": len(errors), "first_errors": errors[:3],
            "categories": cats, "test_layouts": _layouts(rows) if rows.height else {}, **extra}


def preview_source(source, cleaning, n: int) -> dict:
    stats = SelectionStats()
    try:
        rows, rejected = ingest_source(source.model_copy(update={"limit": min(n, source.limit or n)}), cleaning, stats)
    except Exception as e:  # noqa: BLE001 - what a materialization would fail with, said per source
        return _summary("source", source.name, pl.DataFrame(), [], error=f"{type(e).__name__}: {e}")
    errors = [f"{r['source_file']} row {r['source_row']} {r['field']}: {r['error']}" for r in rejected.iter_rows(named=True)]
    return _summary("source", source.name, rows, errors, **stats.as_metadata())


def preview_benchmark(bench, cleaning, n: int) -> dict:
    try:
        rows, errors = load_benchmark(bench.model_copy(update={"limit": min(n, bench.limit or n)}), cleaning)
    except Exception as e:  # noqa: BLE001
        return _summary("benchmark", bench.name, pl.DataFrame(), [], error=f"{type(e).__name__}: {e}")
    return _summary("benchmark", bench.name, rows, errors)


def preview_all(cfg, n: int = 200) -> list[dict]:
    return ([preview_source(s, cfg.cleaning, n) for s in cfg.all_sources()]
            + [preview_benchmark(b, cfg.cleaning, n) for b in cfg.benchmarks])


def render(summary: dict) -> str:
    head = f"{summary['kind']} {summary['name']}: "
    if "error" in summary:
        return head + f"FAILS: {summary['error']}"
    lines = [head + f"{summary['rows']} rows, {summary['rejected']} rejected; categories {summary['categories']}"
             + (f"; test layouts {summary['test_layouts']}" if summary["test_layouts"] else "")
             + ("; 0 ROWS" if summary["rows"] == 0 else "")]
    lines += [f"    {e}" for e in summary["first_errors"]]
    return "\n".join(lines)


def failing(summaries: list[dict]) -> list[str]:
    """Names of sources / benchmarks that would fail or yield no rows."""
    return [f"{s['kind']} {s['name']}" for s in summaries if "error" in s or s["rows"] == 0]
