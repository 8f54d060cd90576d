"""Fill one teacher_responses partition: keep the rows still wanted, generate the missing keys in
committed chunks, then compact when needed. No dagster import: the asset, the benchmark and a killed-and-rerun
subprocess all call `fill_partition`.

Resume: every finished group of prompts is a Delta append (atomic), so a SIGKILL loses at most the
group in flight; the rerun diffs the partition against the wanted keys and generates only the rest.
Rows are deduplicated by response_id on read. New rows stay appended (only new queries: one small
file, no rewrite); rows whose query left the shard go by a Delta DELETE; the partition is rewritten
once at the end only when it holds replaced rows (retries, duplicates) or more than COMPACT_FILES files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import polars as pl

from am_assets.distill.logic import (RESPONSE_SCHEMA, build_conversation, completion_rows, dedupe,
                                     plan_partition, queries_to_generate, retryable, rows_frame, sampling_json,
                                     wanted_keys, with_attempts)
from am_assets.core.progress import PROGRESS_EVERY_S, ProgressLog
from am_assets.distill.imports import teacher_engine
from resources.lake import COMPACT_FILES, LakeResource

TABLE = "teacher_responses"


@dataclass
class FillResult:
    rows: pl.DataFrame  # the partition's final content
    version: int | None  # Delta version after the last write (None: nothing written, table absent)
    kept: int
    generated: int
    removed: int
    prompts: int  # prompts sent to the engine
    completion_tokens: int
    seconds: float


class Progress:
    """'prompts done / total, tokens/s' to a log function, at most every `every_s` seconds."""

    def __init__(self, log: Callable[[str], None], label: str, total: int, every_s: float = PROGRESS_EVERY_S):
        self.label, self.total = label, total
        self.report = ProgressLog(log, every_s, first_at_once=False)  # a short partition logs only its end
        self.done = self.tokens = 0
        self.start = time.perf_counter()

    def update(self, prompts: int, tokens: int, force: bool = False) -> None:
        self.done += prompts
        self.tokens += tokens
        rate = self.tokens / max(time.perf_counter() - self.start, 1e-9)
        self.report(f"{self.label}: {self.done}/{self.total} prompts, {self.tokens} tokens, {rate:.1f} tok/s",
                    final=force)


def read_partition(lake: LakeResource, partition: dict[str, str], dt=None) -> pl.DataFrame:
    """The partition's rows in the opened table `dt` (default: its current version)."""
    dt = dt if dt is not None else lake.table(TABLE)
    if dt is None:
        return rows_frame([])
    df = lake.scan(TABLE, partition, dt=dt).collect()
    return df.select([c for c in df.columns if c not in partition])


def _typed_as(df: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """`df` with the types the table gives its columns when read back (its other columns as they are)."""
    return df.with_columns(pl.col(c).cast(schema[c]) for c in df.columns if c in schema)


def fill_partition(lake: LakeResource, teacher, shard: str, queries: pl.DataFrame, *, engines,
                   log: Callable[[str], None] = print, context=None,
                   progress_every_s: float = PROGRESS_EVERY_S) -> FillResult:
    """Make partition (teacher, shard) hold exactly n samples of `queries` (query_id, question, category).
    `engines`: the EnginesResource whose pool holds the teacher's engine."""
    t0 = time.perf_counter()
    partition = {"teacher": teacher.name, "shard": shard}
    fp = teacher.fingerprint()
    dt = lake.table(TABLE)  # opened once: its version and rows are one snapshot
    read_at = version = None if dt is None else dt.version()
    existing = read_partition(lake, partition, dt)
    plan = plan_partition(existing, wanted_keys(queries, fp, teacher.sampling.n, existing), teacher.max_attempts)
    # the partition as this call leaves it, as long as no other writer commits in between (`commits` tells)
    current, written, commits = existing, [], 0
    if plan.removed:  # drop stale keys and duplicates before appending
        gone = existing.join(plan.keep.select("response_id"), on="response_id", how="anti")["response_id"]
        if gone.len() == plan.removed and 2 * plan.removed < existing.height:
            # a few queries left the shard: a Delta DELETE rewrites only the files holding them
            version = lake.delete_rows(TABLE, partition, "response_id", gone.to_list(), context=context)
            current = existing.join(gone.to_frame(), on="response_id", how="anti")
        else:  # duplicates, or most of the partition goes (a new fingerprint): one rewrite
            version = lake.write_partition(TABLE, plan.keep, partition, context=context)
            current = plan.keep
        commits += 1
        log(f"{teacher.name}/{shard}: removed {plan.removed} rows (query left the shard, old fingerprint "
            f"or duplicate)")
    todo = queries_to_generate(plan.missing, queries)
    log(f"{teacher.name}/{shard}: {plan.keep.height - plan.retried} rows kept, {plan.missing.height} to generate "
        f"({plan.retried} failed before) for {todo.height} prompts (fingerprint {fp})")
    generated = tokens = 0
    if todo.height:
        engine = teacher_engine(engines, teacher)
        samp = sampling_json(teacher)
        todo_rows = todo.to_dicts()
        convs = [build_conversation(teacher.system_prompt, q["question"]) for q in todo_rows]
        progress = Progress(log, f"{teacher.name}/{shard}", len(convs), progress_every_s)
        for group in engine.chat_stream(convs, teacher.sampling, teacher.chunk_size):
            rows = []
            for i, completions in group:
                q = todo_rows[i]
                rows += completion_rows(q, completions, q["sample_idxs"], fingerprint=fp, model=engine.model,
                                        engine=engine.kind, sampling_json=samp, attempts=q["attempts"])
            chunk = rows_frame(rows)
            if chunk.height:
                version = lake.write_partition(TABLE, chunk, partition, context=context, mode="append")
                written.append(chunk)
                commits += 1
            generated += chunk.height
            chunk_tokens = int(chunk["completion_tokens"].fill_null(0).sum())
            tokens += chunk_tokens
            progress.update(len(group), chunk_tokens)
        progress.update(0, 0, force=True)
    raw = plan.keep
    if commits and read_at is not None and version == read_at + commits:
        # versions only grow, so every commit since the read is one of ours: the partition is what was
        # read plus our writes, and a partition that may hold 100k+ responses is not read a second time
        raw = pl.concat([current, *(_typed_as(c, current.schema) for c in written)], how="diagonal")
    elif commits:  # another writer committed meanwhile (rival rows to dedupe): read the partition back
        raw = read_partition(lake, partition)
    final = with_attempts(dedupe(raw)).select(list(RESPONSE_SCHEMA))  # in no set order: the hash is order-free
    # New rows stay appended (the data version is the content hash, so no rewrite is needed for it);
    # compact only a partition that holds replaced rows (retries, a rival's duplicates) or many chunk files
    if version is None or (generated and (raw.height != final.height
                                          or lake.file_count(TABLE, partition) > COMPACT_FILES)):
        final = final.sort("query_id", "sample_idx")
        version = lake.write_partition(TABLE, final, partition, context=context)
    errors = int((final["status"] != "ok").sum()) if final.height else 0
    if errors:
        left = int(retryable(final, teacher.max_attempts).sum())
        log(f"{teacher.name}/{shard}: {errors} responses failed (status 'error'); {left} have attempts left "
            f"(max_attempts {teacher.max_attempts}) and make the partition due for a rerun, which retries them")
    return FillResult(final, version, plan.keep.height - plan.retried, generated, plan.removed, todo.height, tokens,
                      time.perf_counter() - t0)
