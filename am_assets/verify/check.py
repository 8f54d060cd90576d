"""`am-distill check FILE.jsonl`: the pipeline's verdict on hand-written rows, without building anything.

Each input row holds the normalized query columns (`category`, `question`, `reference_answer`,
`test_cases`, `instruction_constraints`, `metadata`; JSON-valued ones as JSON text or as objects) plus
`response` (the full teacher output) and optional `finish_reason`. Each output is one JSON object per
input row, in order: `verify_score`, `passed`, `status`, `verifier`, `truncated` and `details` (what
was extracted and from where), or `error` for a row that could not be read. The verdicts come from
`verify_partition`, the function `verification_outcomes` calls, so they are the pipeline's verdicts.
"""

from __future__ import annotations

import json
from typing import Callable, Iterable, Iterator

import polars as pl

from am_assets.verify.logic import verify_partition
from resources.config import CATEGORIES

_JSON_FIELDS = ("test_cases", "instruction_constraints", "metadata")
_TEXT_FIELDS = ("category", "question", "reference_answer", "response", "finish_reason")


class RowProblem(ValueError):
    pass


def _normalize(row: object) -> dict:
    if isinstance(row, _Unreadable):
        raise RowProblem(str(row))
    if not isinstance(row, dict):
        raise RowProblem(f"expected a JSON object, got {type(row).__name__}")
    if not isinstance(row.get("response"), str):
        raise RowProblem("field response: missing or not a string")
    out: dict = {}
    for f in _TEXT_FIELDS:
        v = row.get(f)
        if isinstance(v, bool) or (v is not None and not isinstance(v, (str, int, float))):
            raise RowProblem(f"field {f}: expected a string or a number, got {type(v).__name__}")
        out[f] = None if v is None else str(v)
    for f in _JSON_FIELDS:
        v = row.get(f)
        out[f] = v if v is None or isinstance(v, str) else json.dumps(v)
    if out["category"] is None:
        raise RowProblem(f"field category: missing ({', '.join(CATEGORIES)})")
    out["metadata"] = out["metadata"] or "{}"
    return out


def check_rows(rows: Iterable[object], vcfg, *, sandbox_factory: Callable, judge=None,
               judge_version: str = "judge/none", log: Callable[[str], None] = lambda m: None,
               models=None) -> Iterator[dict]:
    """One verdict dict per row, in order (see the module doc)."""
    good, results = [], []
    for i, raw in enumerate(rows):
        try:
            good.append((i, _normalize(raw)))
            results.append(None)
        except RowProblem as e:
            results.append({"row": i + 1, "error": str(e)})
    if good:
        responses = pl.DataFrame([{"response_id": f"row{i}", "query_id": f"q{i}", "response": r["response"],
                                   "finish_reason": r["finish_reason"], "status": "ok"} for i, r in good],
                                 schema={"response_id": pl.String, "query_id": pl.String, "response": pl.String,
                                         "finish_reason": pl.String, "status": pl.String})
        queries = pl.DataFrame([{"query_id": f"q{i}", **{k: r[k] for k in (*_TEXT_FIELDS[:3], *_JSON_FIELDS)}}
                                for i, r in good], schema={c: pl.String for c in ("query_id", *_TEXT_FIELDS[:3],
                                                                                  *_JSON_FIELDS)})
        df, _ = verify_partition(responses, queries, pl.DataFrame(), vcfg, sandbox_factory=sandbox_factory,
                                 judge=judge, judge_version=judge_version, log=log, models=models)
        for (i, _), out in zip(good, df.iter_rows(named=True)):
            results[i] = {"row": i + 1, "verify_score": out["verify_score"], "passed": out["passed"],
                          "status": out["status"], "verifier": out["verifier"], "truncated": out["truncated"],
                          "details": json.loads(out["details"] or "{}")}
    yield from results


def read_jsonl(path) -> Iterator[object]:
    """Rows of a JSONL file (blank lines skipped); a line that is not JSON is reported in its place."""
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except (json.JSONDecodeError, ValueError) as e:
                yield _Unreadable(f"{path} line {n}: not valid JSON: {e}")


class _Unreadable(str):
    """Stands in for a line that is not JSON, so it keeps its place in the output."""
