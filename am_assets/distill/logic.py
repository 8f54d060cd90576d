"""Pure distillation logic: prompts, response parsing, row keys, and what a partition still needs.

No dagster here; frames in, frames out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import polars as pl

from am_assets.core.responses import Parsed, parse_response, truncation  # noqa: F401 - re-exported

RETRYABLE = "retryable_errors"  # the materialization metadata entry the retry condition reads

RESPONSE_SCHEMA: dict[str, pl.DataType] = {
    "response_id": pl.String,  # hash of (query_id, fingerprint, sample_idx): the row's cache key
    "query_id": pl.String,
    "sample_idx": pl.Int64,
    "fingerprint": pl.String,  # the teacher's: model + sampling + prompt
    "category": pl.String,
    "model": pl.String,
    "engine": pl.String,  # vllm | openai_server | import
    "sampling": pl.String,  # JSON of the sampling settings
    "response": pl.String,
    "think": pl.String,
    "answer": pl.String,
    "format": pl.String,  # tagged | r1 | skyt1 | untagged
    "finish_reason": pl.String,
    "truncated": pl.Boolean,
    "prompt_tokens": pl.Int64,
    "completion_tokens": pl.Int64,
    "latency_s": pl.Float64,
    "status": pl.String,  # ok | error
    "error": pl.String,
    "attempts": pl.Int64,  # generations of this row's key so far (an error row is retried up to max_attempts)
}


def response_id(query_id: str, fingerprint: str, sample_idx: int) -> str:
    return "r" + hashlib.blake2b(f"{query_id}|{fingerprint}|{sample_idx}".encode(), digest_size=12).hexdigest()


def build_conversation(system_prompt: str, question: str) -> list[dict[str, str]]:
    conv = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return conv + [{"role": "user", "content": question}]


# ---------------------------------------------------------------- parsing


def is_truncated(finish_reason: str | None, parsed: Parsed, text: str | None = None) -> bool:
    return truncation(text, finish_reason, parsed) is not None


# ---------------------------------------------------------------- keys and diffs


def eligible_queries(unique: pl.DataFrame) -> pl.DataFrame:
    """The queries a teacher answers: cluster representatives not found in any benchmark."""
    if unique.is_empty():
        return pl.DataFrame(schema={"query_id": pl.String, "question": pl.String, "category": pl.String})
    return (unique.filter(pl.col("representative") & pl.col("contaminated_by").is_null())
            .select("query_id", "question", "category").unique("query_id", keep="first").sort("query_id"))


def wanted_keys(queries: pl.DataFrame, fingerprint: str, n: int, known: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per (query, sample_idx) the partition must hold, with its response_id. `known`: rows
    with response_ids (the partition); a key they hold under this fingerprint keeps its id, so only new
    keys are hashed in Python (~2 us a key: 0.5 s for a 250k-row partition)."""
    samples = pl.DataFrame({"sample_idx": list(range(n))}, schema={"sample_idx": pl.Int64})
    keys = queries.select("query_id").join(samples, how="cross")
    ids = _known_ids(known, fingerprint)
    keys = (keys.join(ids, on=["query_id", "sample_idx"], how="left", maintain_order="left") if ids is not None
            else keys.with_columns(pl.lit(None, pl.String).alias("response_id")))
    todo = keys["response_id"].is_null()
    fresh = [response_id(q, fingerprint, i) for q, i in keys.filter(todo).select("query_id", "sample_idx").iter_rows()]
    return keys.with_columns(keys["response_id"].scatter(todo.arg_true(), fresh))


def _known_ids(known: pl.DataFrame | None, fingerprint: str) -> pl.DataFrame | None:
    """(query_id, sample_idx, response_id) of `known` under `fingerprint`, when a sample of them agrees
    with response_id() (ids written by another formula: None, every id is computed afresh)."""
    need = {"query_id", "sample_idx", "fingerprint", "response_id"}
    if known is None or not known.height or not need <= set(known.columns):
        return None
    ids = (known.select("query_id", "sample_idx", "response_id", "fingerprint")  # not the texts: ~2x faster
           .filter(pl.col("fingerprint") == fingerprint).drop("fingerprint")
           .unique(["query_id", "sample_idx"], keep="first"))
    sample = ids.sample(min(64, ids.height), seed=0)
    return ids if all(response_id(q, fingerprint, i) == r for q, i, r in sample.iter_rows()) else None


def with_attempts(df: pl.DataFrame) -> pl.DataFrame:
    """Rows written before the `attempts` column existed count as one attempt."""
    if "attempts" not in df.columns:
        df = df.with_columns(pl.lit(None, pl.Int64).alias("attempts"))
    return df.with_columns(pl.col("attempts").fill_null(1))


def dedupe(existing: pl.DataFrame) -> pl.DataFrame:
    """One row per response_id; an ok row wins over an error row, then the latest attempt (a crash
    between an append and the next chunk, a retried row, or two runs at once can leave a key twice)."""
    if existing.is_empty():
        return existing
    if existing["response_id"].n_unique() == existing.height:  # the usual case: a sort of every row spared
        return with_attempts(existing)
    return (with_attempts(existing).with_columns((pl.col("status") != "ok").alias("_bad"))
            .sort(["_bad", "attempts"], descending=[False, True], maintain_order=True)
            .unique("response_id", keep="first", maintain_order=True).drop("_bad"))


def retryable(df: pl.DataFrame, max_attempts: int) -> pl.Series:
    """Failed rows with attempts left: the rows a rerun generates again."""
    return (df["status"] != "ok") & (with_attempts(df)["attempts"] < max_attempts)


@dataclass(frozen=True)
class Plan:
    keep: pl.DataFrame  # existing rows still wanted, one per key: ok, failed rows being retried, exhausted ones
    missing: pl.DataFrame  # wanted keys to generate: query_id, sample_idx, response_id, attempts (so far)
    removed: int  # existing rows dropped: query left the shard, old fingerprint or duplicate

    @property
    def retried(self) -> int:
        return int((self.missing["attempts"] > 0).sum())


def plan_partition(existing: pl.DataFrame, wanted: pl.DataFrame, max_attempts: int) -> Plan:
    """Diff what the partition holds against what it should hold. A failed row with attempts left stays
    in `keep` (so a killed retry loses no count) and is in `missing` too; its new row replaces it."""
    if existing.is_empty():
        return Plan(empty_responses(), wanted.with_columns(pl.lit(0, pl.Int64).alias("attempts")), 0)
    rows = dedupe(existing)
    # the diff on the key columns only: joining the response texts along cost ~2x at 250k rows
    keys = rows.select("response_id", "status", "attempts").join(wanted.select("response_id"),
                                                                  on="response_id", how="semi")
    keep = rows if keys.height == rows.height else rows.join(keys.select("response_id"), on="response_id",
                                                             how="semi")
    done = keys.filter(~retryable(keys, max_attempts))
    missing = (wanted.join(done.select("response_id"), on="response_id", how="anti")
               .join(keys.select("response_id", "attempts"), on="response_id", how="left")
               .with_columns(pl.col("attempts").fill_null(0)))
    return Plan(keep, missing, existing.height - keep.height)


def queries_to_generate(missing: pl.DataFrame, queries: pl.DataFrame) -> pl.DataFrame:
    """Queries with at least one missing sample, with the sample indices they lack and the attempts
    each has had (list columns, in the same order)."""
    if "attempts" not in missing.columns:
        missing = missing.with_columns(pl.lit(0, pl.Int64).alias("attempts"))
    need = (missing.sort("sample_idx").group_by("query_id")
            .agg(pl.col("sample_idx").alias("sample_idxs"), pl.col("attempts").alias("attempts")))
    return queries.join(need, on="query_id", how="inner").sort("query_id")


def empty_responses() -> pl.DataFrame:
    return pl.DataFrame(schema=RESPONSE_SCHEMA)


def completion_rows(query: dict, completions: list, wanted_idxs: list[int], *, fingerprint: str, model: str,
                    engine: str, sampling_json: str, attempts: list[int] | None = None) -> list[dict]:
    """Rows for the wanted sample indices of one query from its engine completions (index = sample_idx);
    `attempts`: the attempts each index had before (default none).

    Completions beyond what the engine returned (an import with fewer than n responses) give no row.
    """
    rows = []
    for idx, before in zip(wanted_idxs, attempts or [0] * len(wanted_idxs)):
        if idx >= len(completions):
            continue
        c = completions[idx]
        failed = c.error is not None
        parsed = parse_response("" if failed else c.text)
        rows.append({
            "response_id": response_id(query["query_id"], fingerprint, idx),
            "query_id": query["query_id"], "sample_idx": idx, "fingerprint": fingerprint,
            "category": query.get("category"), "model": c.model or model, "engine": engine,
            "sampling": sampling_json, "response": None if failed else c.text,
            "think": parsed.think if not failed else None, "answer": parsed.answer if not failed else None,
            "format": None if failed else parsed.format, "finish_reason": c.finish_reason,
            "truncated": False if failed else is_truncated(c.finish_reason, parsed, c.text),
            "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens, "latency_s": c.latency_s,
            "status": "error" if failed else "ok", "error": c.error, "attempts": before + 1,
        })
    return rows


def rows_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=RESPONSE_SCHEMA) if rows else empty_responses()


def sampling_json(teacher) -> str:
    return json.dumps(teacher.sampling.model_dump(mode="json"), sort_keys=True)


def summary(df: pl.DataFrame, max_attempts: int) -> dict:
    """Counts for asset metadata; `retryable_errors` (failed rows with attempts left) is what makes the
    runner and the automation sensor run the partition again (sensors/automation.py)."""
    if df.is_empty():
        return {"rows": 0, "errors": 0, RETRYABLE: 0}
    return {"rows": df.height, "queries": df["query_id"].n_unique(),
            "errors": int((df["status"] != "ok").sum()), RETRYABLE: int(retryable(df, max_attempts).sum()),
            "truncated": int(df["truncated"].sum()),
            "completion_tokens": int(df["completion_tokens"].fill_null(0).sum()),
            "formats": dict(df.group_by("format").len().iter_rows())}
