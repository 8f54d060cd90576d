"""verification_outcomes for one teacher x shard: pick a verifier per response, reuse cached verdicts,
verify the rest, add quality flags and `passed`. Plain functions; the asset only reads and writes.

Verifier registry (by the query's category and carried data):
  choice          option letter vs metadata.choices (any category)    needs metadata.choices
  math            Math-Verify (+ optional judge second opinion)       needs reference_answer
  code            sandboxed tests                                     needs test_cases
  if              IFEval validators                                   needs instruction_constraints
  reasoning-gym   the generator's score_answer (non-math rg rows)      needs reference_answer
  science         judge, 0-5 against the reference                     needs reference_answer
  other           judge, (coherence + correctness + helpfulness) / 12
The row cache key is (response_id, verifier_version), plus `input_hash` (answer text and the query's
reference / tests / constraints), so a changed response or reference is verified again. `passed` and
the quality flags are recomputed on every run (they depend on thresholds and on the whole partition).
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Callable

import polars as pl

from am_assets.core.responses import parse_response
from am_assets.verify import choice, code_tests, ifeval, rgym
from am_assets.verify.base import Verdict, answer_part, no_reference, truncated_verdict
from am_assets.verify.math_pool import get_pool
from am_assets.verify.quality import has_text, perplexities, repetitive_flags

OUTCOME_SCHEMA: dict[str, pl.DataType] = {
    "response_id": pl.String, "query_id": pl.String, "category": pl.String, "verify_score": pl.Float64,
    "passed": pl.Boolean, "verifier": pl.String, "verifier_version": pl.String, "status": pl.String,
    "details": pl.String, "has_think": pl.Boolean, "has_answer": pl.Boolean, "truncated": pl.Boolean,
    "repetitive": pl.Boolean, "perplexity": pl.Float64, "perplexity_model": pl.String, "input_hash": pl.String,
}
_QUERY_COLS = ["query_id", "category", "question", "reference_answer", "test_cases", "instruction_constraints",
               "metadata"]
MATH_CHUNK = 500  # items per progress line


@functools.cache
def math_version(second_opinion: bool, fallback: str = "answer_statement") -> str:
    from importlib.metadata import version

    # /3: answers only from the answer part (last \boxed{}, else the configured fallback); truncation
    return f"math-verify-{version('math-verify')}/3-{fallback}" + ("+judge" if second_opinion else "")


def input_hash(row: dict) -> str:
    """What a verdict depends on besides the verifier: the answer and the query's check data."""
    parts = [row.get(k) or "" for k in ("_answer", "category", "reference_answer", "test_cases",
                                         "instruction_constraints", "metadata", "question")]
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=10).hexdigest()


def choose_verifier(row: dict) -> str:
    if choice.choices_of(row.get("metadata")) is not None:  # options + letter: any category, no judge
        return "choice"
    category = row.get("category")
    if category == "math":
        return "math"
    if category in ("code", "if", "science"):
        return category
    if rgym.rg_spec(row.get("metadata")) is not None:
        return "reasoning-gym"
    return "other"


def verifier_versions(vcfg, judge_version: str) -> dict[str, tuple[str, str]]:
    """verifier key -> (name, version) recorded on each row."""
    return {
        "math": ("math-verify", math_version(vcfg.math_judge_second_opinion, vcfg.answer_fallback)),
        "code": (code_tests.NAME, f"{code_tests.VERSION}/tests{vcfg.code_max_tests}"
                                  + ("/all" if vcfg.code_score_mode == "all_or_nothing" else "")),
        "if": (ifeval.NAME, ifeval.VERSION),
        "reasoning-gym": (rgym.NAME, rgym.version()),
        "choice": (choice.NAME, choice.VERSION),
        "science": ("judge-science", judge_version),
        "other": ("judge-other", judge_version),
        "none": ("none", "none/1"),
    }


def join_queries(responses: pl.DataFrame, queries: pl.DataFrame) -> pl.DataFrame:
    cols = [c for c in _QUERY_COLS if c in queries.columns]
    q = queries.select(cols).unique("query_id", keep="first") if queries.height else pl.DataFrame(
        schema={c: pl.String for c in _QUERY_COLS})
    for c in _QUERY_COLS:
        if c not in q.columns:
            q = q.with_columns(pl.lit(None, dtype=pl.String).alias(c))
    return responses.join(q, on="query_id", how="left")


def _verify_math(rows: list[dict], vcfg, judge, log) -> list[Verdict]:
    out: list[Verdict | None] = [None] * len(rows)
    todo = []
    for i, r in enumerate(rows):
        if not r.get("reference_answer"):
            out[i] = no_reference("reference_answer")
        else:
            todo.append(i)
    pool = get_pool(vcfg.math_workers, vcfg.math_timeout_s)
    for start in range(0, len(todo), MATH_CHUNK):
        chunk = todo[start:start + MATH_CHUNK]
        # an untagged response mixes thinking and answer: a stated answer counts only in its last lines
        res = pool.verify([(rows[i]["reference_answer"], rows[i]["_answer"],
                            vcfg.answer_fallback if rows[i].get("_delimited") or vcfg.answer_fallback == "none"
                            else "answer_statement_tail") for i in chunk])
        for i, d in zip(chunk, res):
            out[i] = Verdict(d["score"], d["status"], d["details"])
        log(f"math: {min(start + MATH_CHUNK, len(todo))}/{len(todo)} verified")
    if vcfg.math_judge_second_opinion and judge is not None:
        wrong = [i for i in todo if out[i].status == "ok" and out[i].score == 0 and rows[i]["_answer"]]
        opinions = judge.math_equivalent([(rows[i]["question"] or "", rows[i]["reference_answer"], rows[i]["_answer"])
                                          for i in wrong])
        for i, yes in zip(wrong, opinions):
            details = dict(out[i].details, judge_second_opinion=yes)
            out[i] = Verdict(1.0 if yes else 0.0, "ok", details)
        log(f"math: judge second opinion on {len(wrong)} answers Math-Verify rejected")
    return out  # type: ignore[return-value]


def _verify_group(key: str, rows: list[dict], vcfg, sandbox_factory, judge, log) -> list[Verdict]:
    if key == "math":
        return _verify_math(rows, vcfg, judge, log)
    if key == "choice":
        return [choice.verify_choice(r["_answer"], r.get("metadata"), r.get("category")) for r in rows]
    if key == "code":
        try:
            sandbox = sandbox_factory()
        except Exception as e:  # noqa: BLE001 - no sandbox: no verdicts, said per row
            return [Verdict(0.0, "verifier_error", {"error": f"sandbox: {e}"[:500]})] * len(rows)
        items = [{"answer": r["_answer"], "response": None, "test_cases": r.get("test_cases")} for r in rows]
        return code_tests.verify_code(items, sandbox, vcfg.code_max_tests, vcfg.code_timeout_s, log=log,
                                      score_mode=vcfg.code_score_mode)
    if key == "if":
        return [ifeval.verify_if(r["_answer"], r.get("instruction_constraints")) for r in rows]
    if key == "reasoning-gym":
        return [rgym.verify_rg(r["_answer"], r.get("reference_answer"), r.get("question") or "",
                               rgym.rg_spec(r.get("metadata"))) for r in rows]
    if key in ("science", "other") and judge is None:
        return [Verdict(0.0, "verifier_error", {"error": "no judge resource"})] * len(rows)
    if key == "science":
        out: list[Verdict | None] = [None if r.get("reference_answer") else no_reference("reference_answer") for r in rows]
        idx = [i for i, v in enumerate(out) if v is None]
        for i, v in zip(idx, judge.rate_science([(rows[i].get("question") or "", rows[i]["reference_answer"],
                                                  rows[i]["_answer"]) for i in idx])):
            out[i] = v
        return out  # type: ignore[return-value]
    if key == "other":
        return judge.rate_other([(r.get("question") or "", r["_answer"]) for r in rows])
    raise KeyError(key)


def verify_partition(responses: pl.DataFrame, queries: pl.DataFrame, cached: pl.DataFrame, vcfg, *,
                     sandbox_factory: Callable, judge=None, judge_version: str = "judge/none",
                     log: Callable[[str], None] = lambda m: None) -> tuple[pl.DataFrame, dict]:
    """One outcome row per response (OUTCOME_SCHEMA) and run statistics."""
    versions = verifier_versions(vcfg, judge_version)
    rows = join_queries(responses, queries).to_dicts()
    keyed = {}
    if cached.height and {"response_id", "verifier_version"} <= set(cached.columns):
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
        key = choose_verifier(r)
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
        for i, v in zip(idx, _verify_group(key, [rows[i] for i in idx], vcfg, sandbox_factory, judge, log)):
            verdicts[i] = (key, v)
    texts = [r.get("response") or "" for r in rows]
    repetitive, n_frequent = repetitive_flags(texts, vcfg.repeat_ngram, vcfg.repeat_max_count)
    ppl = _perplexities(rows, keyed, vcfg, log)
    out = []
    for r, (key, v), rep, p in zip(rows, verdicts, repetitive, ppl):
        threshold = vcfg.thresholds.get(r.get("category"), float("inf"))
        truncated = bool(r.get("_truncated") or r.get("truncated"))
        out.append({
            "response_id": r["response_id"], "query_id": r["query_id"], "category": r.get("category"),
            "verify_score": float(v.score), "passed": v.status == "ok" and v.score > threshold,
            "verifier": versions[key][0], "verifier_version": versions[key][1], "status": v.status,
            "details": json.dumps(v.details, default=str), "has_think": has_text(r.get("think")),
            "has_answer": has_text(r["_answer"]), "truncated": truncated, "repetitive": rep, "perplexity": p,
            "perplexity_model": vcfg.perplexity_model if p is not None else None,
            "input_hash": r.get("_input_hash"),
        })
    df = pl.DataFrame(out, schema=OUTCOME_SCHEMA)
    stats = {"verified": sum(len(v) for v in groups.values()), "reused": reused, "frequent_ngrams": n_frequent}
    return df, stats


def _perplexities(rows: list[dict], cached: dict, vcfg, log) -> list[float | None]:
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
        for i, p in zip(todo, perplexities(texts, vcfg.perplexity_model, vcfg.perplexity_max_tokens)):
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
