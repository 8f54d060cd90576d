"""Which rows of a source go in: `filter` on the raw record, then `sample`, then `limit`.

Deselected rows are counted, not rejected: they are not errors. A record the filter cannot be
evaluated on is rejected (field `filter`) with the reason, so nothing disappears without a trace.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterator

import polars as pl

from am_assets.ingest.adapters import get_path
from am_assets.ingest.readers import RowError
from resources.config import row_filter_expr

_BATCH = 5_000  # records per filter evaluation: a Polars expression runs over a small frame


@dataclass
class SelectionStats:
    filtered_out: int = 0
    sampled_out: int = 0
    limit_reached: bool = False

    def as_metadata(self) -> dict:
        return {"filtered_out": self.filtered_out, "sampled_out": self.sampled_out, "limit_reached": self.limit_reached}


def _map_mask(records: list[dict], spec: dict[str, Any]) -> list[bool]:
    wanted = {k: set(map(_key, v)) if isinstance(v, list) else {_key(v)} for k, v in spec.items()}
    return [isinstance(r, dict) and all(_key(get_path(r, k)) in vals for k, vals in wanted.items()) for r in records]


def _key(value: Any) -> Any:
    """Filter values compare as JSON would: 5 == 5.0, "5" != 5."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _expr_mask(records: list[dict], expr: pl.Expr) -> list[bool]:
    names = expr.meta.root_names()
    frame = pl.DataFrame([pl.Series(n, [r.get(n) if isinstance(r, dict) else None for r in records], strict=False)
                          for n in names]) if names else pl.DataFrame({"_": [0] * len(records)})
    mask = frame.select(expr.fill_null(False).alias("keep")).to_series()
    if mask.len() == 1 and len(records) != 1:  # a constant expression: same answer for every row
        mask = pl.Series([mask[0]] * len(records))
    return [bool(m) for m in mask]


def filter_records(items: Iterator[tuple[int, Any]], spec, stats: SelectionStats) -> Iterator[tuple[int, Any]]:
    """(row, record | RowError) items whose record passes `spec` (str: Polars expression; dict: field ->
    value or [values]); RowErrors pass through."""
    if spec is None:
        yield from items
        return
    expr = row_filter_expr(spec) if isinstance(spec, str) else None
    batch: list[tuple[int, Any]] = []

    def flush():
        records = [rec for _, rec in batch if not isinstance(rec, RowError)]
        try:
            mask = iter(_expr_mask(records, expr) if expr is not None else _map_mask(records, spec))
            error = None
        except Exception as e:  # noqa: BLE001 - e.g. a type the expression cannot compare: say so per row
            mask, error = iter(()), f"filter {spec!r} cannot be evaluated: {type(e).__name__}: {e}"[:300]
        for row, rec in batch:
            if isinstance(rec, RowError):
                yield row, rec
            elif error:
                yield row, RowError(row, "filter", error, str(rec)[:200])
            elif next(mask):
                yield row, rec
            else:
                stats.filtered_out += 1
        batch.clear()

    for item in items:
        batch.append(item)
        if len(batch) == _BATCH:
            yield from flush()
    yield from flush()


def sampled_in(query_id: str, spec) -> bool:
    """Stable: depends only on the seed and the question, not on the row's position or the file's size."""
    if spec is None:
        return True
    h = hashlib.blake2b(f"{spec.seed}:{query_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64 < spec.fraction
