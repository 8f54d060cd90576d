"""verification_outcomes for one teacher x shard: pick a verifier per response, reuse cached verdicts,
verify the rest, add quality flags and `passed`. Plain functions; the asset only reads and writes.

Verifiers (am_assets/verify/registry.py; the first whose `applies(row)` holds, in this order):
  choice          option letter vs metadata.choices (any category)    needs metadata.choices
  math            Math-Verify (+ optional judge second opinion)       needs reference_answer
  code            sandboxed tests                                     needs test_cases
  if              IFEval validators                                   needs instruction_constraints
  science         judge, 0-5 against the reference                     needs reference_answer
  reasoning-gym   the generator's score_answer (non-math rg rows)      needs reference_answer
  other           judge, (coherence + correctness + helpfulness) / 12
The row cache key is (response_id, verifier_version), plus `input_hash` (answer text and the query's
reference / tests / constraints), so a changed response or reference is verified again. Unchanged rows
are found first by one Polars join on (response_id, content_key) (am_assets/verify/cache.py) and never
reach the per-row path. `passed` and
the quality flags are recomputed on every run (they depend on thresholds and on the whole partition).
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable

import polars as pl

from am_assets.core.responses import parse_response
from am_assets.verify.cache import content_keys, passed_flag, split_hits
from am_assets.verify.base import Verdict, VerifyContext, answer_part, no_reference, truncated_verdict
from am_assets.verify.math_verifier import math_version  # noqa: F401 - re-exported (benchmarks, docs)
from am_assets.verify.quality import has_text, perplexities
from am_assets.verify.repetition import NgramState, appended_flags, repetition_flags
from am_assets.verify.registry import NONE, REGISTRY, by_key
from resources.pool import ModelPool

OUTCOME_SCHEMA: dict[str, pl.DataType] = {
    "response_id": pl.String, "query_id": pl.String, "category": pl.String, "verify_score": pl.Float64,
    "passed": pl.Boolean, "verifier": pl.String, "verifier_version": pl.String, "status": pl.String,
    "details": pl.String, "has_think": pl.Boolean, "has_answer": pl.Boolean, "truncated": pl.Boolean,
    "repetitive": pl.Boolean, "perplexity": pl.Float64, "perplexity_model": pl.String, "input_hash": pl.String,
    "content_key": pl.String,  # the fast path's cache key (am_assets/verify/cache.py)
}
OUTCOME_COLS_BUT_FLAGS = [c for c in OUTCOME_SCHEMA if c not in ("passed", "repetitive")]
_QUERY_COLS = ["query_id", "category", "question", "reference_answer", "test_cases", "instruction_constraints",
               "metadata"]


def input_hash(row: dict) -> str:
    """What a verdict depends on besides the verifier: the answer and the query's check data."""
    parts = [row.get(k) or "" for k in ("_answer", "category", "reference_answer", "test_cases",
                                         "instruction_constraints", "metadata", "question")]
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=10).hexdigest()


def choose_verifier(row: dict, registry=REGISTRY) -> str:
    """The key of the first registered verifier that takes the row."""
    return next(v.key for v in registry if v.applies(row))


def verifier_versions(vcfg, judge_version: str, registry=REGISTRY) -> dict[str, tuple[str, str]]:
    """verifier key -> (name, version) recorded on each row."""
    ctx = VerifyContext(vcfg, judge_version=judge_version)
    return {**{v.key: (v.name, v.version(ctx)) for v in registry}, "none": NONE}


def query_rows(queries: pl.DataFrame) -> pl.DataFrame:
    """The query columns a verdict reads, one row per query_id (the first)."""
    cols = [c for c in _QUERY_COLS if c in queries.columns]
    q = queries.select(cols).unique("query_id", keep="first", maintain_order=True) if queries.height else \
        pl.DataFrame(schema={c: pl.String for c in _QUERY_COLS})
    for c in _QUERY_COLS:
        if c not in q.columns:
            q = q.with_columns(pl.lit(None, dtype=pl.String).alias(c))
    return q


def join_queries(responses: pl.DataFrame, queries: pl.DataFrame) -> pl.DataFrame:
    return responses.join(query_rows(queries), on="query_id", how="left")


def verify_partition(responses: pl.DataFrame, queries: pl.DataFrame, cached: pl.DataFrame, vcfg, *,
                     sandbox_factory: Callable, judge=None, judge_version: str = "judge/none",
                     log: Callable[[str], None] = lambda m: None, models: ModelPool | None = None,
                     registry=REGISTRY, ngram_state: NgramState | None = None) -> tuple[pl.DataFrame, dict]:
    """One outcome row per response (OUTCOME_SCHEMA) and run statistics, of which `ngram_update` is
    the partition's n-gram counts to store (repetition.py; `ngram_state`: the stored ones). `models`:
    the step's model pool (math workers, perplexity model); without one, a pool of this call's own."""
    if models is None:
        with ModelPool() as own:
            return verify_partition(responses, queries, cached, vcfg, sandbox_factory=sandbox_factory, judge=judge,
                                    judge_version=judge_version, log=log, models=own, registry=registry,
                                    ngram_state=ngram_state)
    ctx = VerifyContext(vcfg, sandbox_factory=sandbox_factory, judge=judge, judge_version=judge_version,
                        models=models, log=log)
    verifiers = by_key(registry)
    versions = verifier_versions(vcfg, judge_version, registry)
    joined = join_queries(responses, queries)
    joined = joined.with_columns(content_keys(joined, registry)).with_row_index("_i")
    # unchanged rows: one join against the cache, no per-row Python (am_assets/verify/cache.py)
    hits, misses = split_hits(joined, cached, versions, vcfg.perplexity_model)
    # flags over the whole partition: the n-gram rule counts across every response (stored counts + the new ones)
    repetitive, ngram_update, ngram_stats = repetition_flags(joined, cached, vcfg.repeat_ngram, vcfg.repeat_max_count,
                                                             ngram_state)
    todo = joined.join(misses, on="_i", how="semi")
    if cached.height and {"response_id", "verifier_version"} <= set(cached.columns) and todo.height:
        cached = cached.join(todo.select("response_id"), on="response_id", how="semi")
    else:
        cached = cached.head(0)
    missed, stats = _verify_rows(todo, cached, vcfg, ctx, verifiers, versions, registry, log, models)
    parts = [missed]
    if hits.height:
        parts.append(joined.select("_i", "query_id", "category").join(hits, on="_i", how="inner"))
        # counted as before: verdicts a verifier gave (rows of failed generations or cut-off responses have none)
        stats["reused"] += int(hits["input_hash"].is_not_null().sum())
    df = (pl.concat([p.select(["_i", *OUTCOME_COLS_BUT_FLAGS]) for p in parts if p.height] or
                    [missed.select(["_i", *OUTCOME_COLS_BUT_FLAGS])]).sort("_i"))
    df = df.with_columns(passed_flag(vcfg.thresholds), pl.Series("repetitive", repetitive, dtype=pl.Boolean))
    stats.update(ngram_stats, ngram_update=ngram_update)
    return df.select(list(OUTCOME_SCHEMA)), stats


def verify_new_rows(new: pl.DataFrame, queries: pl.DataFrame, cached: pl.DataFrame, vcfg, *,
                    stored_texts: Callable[[], pl.Series], sandbox_factory: Callable, judge=None,
                    judge_version: str = "judge/none", log: Callable[[str], None] = lambda m: None,
                    models: ModelPool, registry=REGISTRY,
                    ngram_state: NgramState | None = None) -> tuple[pl.DataFrame, pl.DataFrame | None, dict] | None:
    """verify_partition for a partition that is its `cached` outcome rows, whose inputs are unchanged
    (stamp.py decided it), plus the responses `new`: only the new rows are joined, keyed and verified.
    Returns (every outcome row; the new rows alone when no stored row changed, else None; stats), or
    None when this cannot be done without the whole partition: the stored n-gram counts do not cover
    `cached`, a new response id is a stored one, or a perplexity is missing under a perplexity model
    (the whole-partition path would compute those rows again). `stored_texts()`: the cached rows'
    responses in their order, read only when an n-gram crossed `repeat_max_count`."""
    if new.height and new["response_id"].is_in(cached["response_id"].implode()).any():
        return None
    if vcfg.perplexity_model and cached.height and not (
            cached["perplexity"].is_not_null() & (cached["perplexity_model"] == vcfg.perplexity_model)).all():
        return None
    joined = join_queries(new, queries)
    joined = joined.with_columns(content_keys(joined, registry)).with_row_index("_i")
    flags = appended_flags(joined, cached, vcfg.repeat_ngram, vcfg.repeat_max_count, ngram_state, stored_texts)
    if flags is None:
        return None
    repetitive, stored_repetitive, ngram_update, ngram_stats = flags
    ctx = VerifyContext(vcfg, sandbox_factory=sandbox_factory, judge=judge, judge_version=judge_version,
                        models=models, log=log)
    versions = verifier_versions(vcfg, judge_version, registry)
    df, stats = _verify_rows(joined, cached.head(0), vcfg, ctx, by_key(registry), versions, registry, log, models)
    added = (df.sort("_i").with_columns(passed_flag(vcfg.thresholds),
                                        pl.Series("repetitive", repetitive, dtype=pl.Boolean))
             .select(list(OUTCOME_SCHEMA)))
    flipped = stored_repetitive != cached["repetitive"].to_numpy()
    stored = cached.select(list(OUTCOME_SCHEMA)).cast(OUTCOME_SCHEMA)
    if flipped.any():
        stored = stored.with_columns(pl.Series("repetitive", stored_repetitive, dtype=pl.Boolean))
    stats.update(ngram_stats, ngram_update=ngram_update, reused=int(cached["input_hash"].is_not_null().sum()),
                 flipped=int(flipped.sum()))
    return pl.concat([stored, added]), None if flipped.any() else added, stats


def _verify_rows(todo: pl.DataFrame, cached: pl.DataFrame, vcfg, ctx, verifiers, versions, registry, log,
                 models) -> tuple[pl.DataFrame, dict]:
    """The per-row path: parse, pick a verifier, reuse a verdict by (response_id, verifier_version,
    input_hash), verify the rest. `cached`: the cached rows of these responses only."""
    rows = todo.to_dicts()
    keyed = {}
    if cached.height:
        keyed = {(r["response_id"], r["verifier_version"]): r for r in cached.to_dicts()}
    verdicts: list[tuple[str, Verdict] | None] = [None] * len(rows)
    groups: dict[str, list[int]] = {}
    reused = 0
    for i, r in enumerate(rows):
        parsed = parse_response(r["response"]) if r.get("response") else None
        r["_answer"] = (parsed.answer or "") if parsed else answer_part(r.get("answer"), None)
        r["_delimited"] = parsed is None or parsed.format != "untagged"
        if r.get("status") not in (None, "ok"):
            verdicts[i] = ("none", Verdict(0.0, "verifier_error", {"reason": f"the generation failed: {r.get('error')}"}))
            continue
        if r.get("category") is None:
            verdicts[i] = ("none", no_reference(f"query row (query_id {r['query_id']} is not in unique_queries)"))
            continue
        key = choose_verifier(r, registry)
        cut = truncated_verdict(r["response"], r.get("finish_reason"), parsed) if parsed else None
        if cut is not None or r.get("truncated"):  # cut off: never a pass, whatever the verifier would say
            r["_truncated"] = True
            verdicts[i] = (key, cut or Verdict(0.0, "truncated", {"reason": "truncated (teacher_responses)"}))
            continue
        r["_input_hash"] = input_hash(r)
        hit = keyed.get((r["response_id"], versions[key][1]))
        if hit is not None and hit.get("input_hash") == r["_input_hash"]:
            verdicts[i] = (key, Verdict(hit["verify_score"], hit["status"], json.loads(hit["details"] or "{}")))
            reused += 1
        else:
            groups.setdefault(key, []).append(i)
    for key, idx in groups.items():
        log(f"{key}: verifying {len(idx)} responses")
        for i, v in zip(idx, verifiers[key].verify([rows[i] for i in idx], ctx)):
            verdicts[i] = (key, v)
    ppl = _perplexities(rows, keyed, vcfg, log, models)
    out = []
    for r, (key, v), p in zip(rows, verdicts, ppl):
        truncated = bool(r.get("_truncated") or r.get("truncated"))
        out.append({
            "_i": r["_i"], "content_key": r["content_key"],
            "response_id": r["response_id"], "query_id": r["query_id"], "category": r.get("category"),
            "verify_score": float(v.score),
            "verifier": versions[key][0], "verifier_version": versions[key][1], "status": v.status,
            "details": json.dumps(v.details, default=str), "has_think": has_text(r.get("think")),
            "has_answer": has_text(r["_answer"]), "truncated": truncated, "perplexity": p,
            "perplexity_model": vcfg.perplexity_model if p is not None else None,
            "input_hash": r.get("_input_hash"),
        })
    df = pl.DataFrame(out, schema={"_i": pl.UInt32, **{c: OUTCOME_SCHEMA[c] for c in OUTCOME_COLS_BUT_FLAGS}})
    return df, {"verified": sum(len(v) for v in groups.values()), "reused": reused}


def _perplexities(rows: list[dict], cached: dict, vcfg, log, models: ModelPool) -> list[float | None]:
    """Perplexity of query + answer under `verification.perplexity_model`, reusing cached values."""
    if not vcfg.perplexity_model:
        return [None] * len(rows)
    prev = {rid: c.get("perplexity") for (rid, _), c in cached.items()
            if c.get("perplexity_model") == vcfg.perplexity_model and c.get("perplexity") is not None}
    out = [prev.get(r["response_id"]) for r in rows]
    todo = [i for i, r in enumerate(rows) if out[i] is None and r.get("status") in (None, "ok") and r["_answer"]]
    if todo:
        log(f"perplexity: {len(todo)} responses under {vcfg.perplexity_model}")
        texts = [f"{rows[i].get('question') or ''}\n{rows[i]['_answer']}" for i in todo]
        for i, p in zip(todo, perplexities(texts, vcfg.perplexity_model, vcfg.perplexity_max_tokens, models)):
            out[i] = p
    return out


def summary(df: pl.DataFrame) -> dict:
    """Counts per status and verifier, and the pass rate, for asset metadata."""
    return {
        "status_counts": dict(df.group_by("status").len().iter_rows()),
        "verifier_counts": dict(df.group_by("verifier").len().iter_rows()),
        "pass_rate": round(float(df["passed"].mean()), 4) if df.height else 0.0,
        "flags": {f: int(df[f].sum()) for f in ("truncated", "repetitive") if df.height}
        | {f"missing_{f[4:]}": int((~df[f]).sum()) for f in ("has_think", "has_answer") if df.height},
    }
