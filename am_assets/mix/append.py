"""training_mix appends when the selection only grows.

Adding a source adds queries to every shard. The mix used to build every selected row's text again,
rewrite the Delta table and write every export again (44 s of the 1M-query +1% step, most of it the
~4 GB of JSONL). When every row the table holds is selected again, unchanged, only the new rows are
built: they are appended to the table and to the JSONL exports, and the Parquet export is rewritten
with them. The conditions, all checked, else the whole mix is rebuilt:
- the table's newest commit is a training_mix write that recorded the export files' sizes, and the
  files in export_dir still have those sizes (not edited, not removed, same export_dir);
- every stored row carries the current mix settings hash (thresholds, quotas, seeds, prompts);
- every stored row is selected again with the same stage, selection reason, score, tokens, category,
  teacher and query: no new row displaced it (quotas, the token budget and Stage II's top-CV quota
  are global);
- the inputs of every stored row are unchanged: its response and query as the verdict cache keys them
  (`content_key`: response text and parts, query text, reference, tests, constraints), the token
  counts, the query's source and its difficulty columns (threshold, pass_rates, cv, level).
Stored rows keep the `input_versions` they were selected from; the appended rows carry the current
ones. The data version is order-free and additive (rows_digest), so it follows from the stored sum
and the new rows. tests/test_mix_append.py compares an appended mix with a rebuilt one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl

from am_assets.mix.export import export_files
from am_assets.mix.sharded import representative_queries, response_content_keys
from resources.lake import hash_sum

SELECTION = ["response_id", "query_id", "teacher", "category", "verify_score", "stage", "selection_reason", "tokens"]
IDENTITY = ["content_key", "prompt_tokens", "completion_tokens", "source", "threshold", "pass_rates", "cv", "level"]
ROW_KEY = ["response_id", "stage"]  # a response may be in Stage I and Stage II
EXPORTS_KEY, SUM_KEY, ROWS_KEY = "mix_export_sizes", "mix_row_hash_sum", "mix_rows"


def row_hash_sum(table: pl.DataFrame) -> int:
    """resources.lake.hash_sum of the rows' hashes over their sorted columns."""
    return hash_sum(table.select(sorted(table.columns)).hash_rows(seed=0)) if table.height else 0


def rows_digest(schema: dict, rows: int, hash_sum: int) -> str:
    """The table's data version: schema, row count and row-hash sum (order-free, additive)."""
    h = hashlib.blake2b(digest_size=12)
    h.update(repr(sorted((c, str(t)) for c, t in schema.items())).encode())
    h.update(f"{rows}:{hash_sum}".encode())
    return h.hexdigest()


def export_sizes(export_dir: Path) -> dict[str, int]:
    return {name: p.stat().st_size for name, p in sorted(export_files(export_dir).items())
            if p.exists() and name not in ("card", "card_json")}


def plan_append(lake, kept: pl.DataFrame, scans, shards: list[str], *, settings_hash: str, export_dir: Path,
                columns: list[str]) -> tuple[pl.DataFrame | None, dict, str]:
    """(the kept rows to append, or None for a rebuild; the newest commit's metadata, with the table
    version it is at under "version"; why)."""
    dt = lake.table("training_mix")
    hist = dt.history(1) if dt is not None else []
    meta = {**(hist[0] if hist else {}), "version": dt.version() if dt is not None else None}
    if not {EXPORTS_KEY, SUM_KEY, ROWS_KEY} <= set(meta):
        return None, meta, "no training_mix commit with export sizes"
    if json.loads(meta[EXPORTS_KEY]) != export_sizes(export_dir):
        return None, meta, "the exports differ from the ones the table recorded"
    have = pl.scan_delta(dt).collect_schema().names()
    if set(have) != set(columns):
        return None, meta, "the table's columns are another version's"
    stored = pl.scan_delta(dt).select(*SELECTION, *IDENTITY, "mix_config_hash").collect()
    if stored.height == 0 or (stored["mix_config_hash"] != settings_hash).any():
        return None, meta, "the mix settings changed"
    if stored.select(ROW_KEY).n_unique() != stored.height:
        return None, meta, "the table holds a row twice"
    again = kept.select(SELECTION).cast(stored.select(SELECTION).schema)
    if stored.join(again, on=SELECTION, how="semi", nulls_equal=True).height != stored.height:
        return None, meta, "a stored row is no longer selected as it was"
    identity = stored.select("response_id", *IDENTITY)
    current = current_identity(scans, shards, kept.join(stored.select("response_id"), on="response_id", how="semi"))
    current = current.cast(identity.schema)
    if identity.join(current, on=["response_id", *IDENTITY], how="semi", nulls_equal=True).height != stored.height:
        return None, meta, "the inputs of a stored row changed"
    return kept.join(stored.select(ROW_KEY), on=ROW_KEY, how="anti"), meta, "ok"


def current_identity(scans, shards: list[str], rows: pl.DataFrame) -> pl.DataFrame:
    """response_id + IDENTITY of `rows` (kept rows with shard, query_id) from the current inputs, read
    as sharded.text_rows reads them."""
    out = []
    for shard in shards:
        keep = rows.filter(pl.col("shard") == shard)
        if keep.height == 0:
            continue
        s = scans(shard)
        ids, qids = keep.select("response_id").lazy(), keep.select("query_id").unique().lazy()
        resp = s["teacher_responses"].select("response_id", "prompt_tokens", "completion_tokens")
        queries = representative_queries(s["unique_queries"]).select("query_id", "source")
        diff = s["difficulty_scores"].select("query_id", "threshold", "pass_rates", "cv", "level")
        one = lambda lf, key, sel: lf.join(sel, on=key, how="semi").unique(key, keep="first").collect(engine="streaming")
        out.append(keep.select("response_id", "query_id")
                   .join(response_content_keys(s["verification_outcomes"], ids), on="response_id", how="left")
                   .join(one(resp, "response_id", ids), on="response_id", how="left")
                   .join(one(queries, "query_id", qids), on="query_id", how="left")
                   .join(one(diff, "query_id", qids), on="query_id", how="left")
                   .select("response_id", *IDENTITY))
    return pl.concat(out, how="diagonal_relaxed") if out else pl.DataFrame(schema={"response_id": pl.String})
