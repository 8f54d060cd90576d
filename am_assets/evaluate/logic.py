"""Evaluation of one model on one benchmark: prompts, sample rows, verdicts, per-item and summary scores.

Plain functions (Polars in/out). Scoring calls the verification stage's own `verify_partition`, so a
benchmark answer is judged exactly like a teacher response in verification_outcomes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable

import polars as pl

from am_assets.evaluate.passk import mean_pass_at_k, pass_at_k, report_ks
from am_assets.verify.api import answer_part, choices_of, verify_partition

# verdict statuses that are no verdict on the model (the verifier could not judge): such samples are left
# out of n; `timeout` (e.g. generated code that never ends) and `unparseable` count as failures
NO_VERDICT = ("verifier_error", "no_reference")

ITEM_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.String, "query_id": pl.String, "category": pl.String,
    "n": pl.Int64,  # samples with a verdict
    "correct": pl.Int64, "pass_at_1": pl.Float64, "pass_at_k": pl.Float64, "k": pl.Int64,
    "mean_completion_tokens": pl.Float64, "truncated": pl.Int64,
    "statuses": pl.String,  # JSON {status: count}
    "samples": pl.String,  # JSON [{sample_idx, passed, score, status, finish_reason, response}]
}


def conversations(bench: pl.DataFrame, system_prompt: str | None, math_suffix: str,
                  choice_suffix: str = "") -> list[list[dict]]:
    """One chat per benchmark item; multiple-choice items (metadata.choices) get `choice_suffix`, other
    math questions the P3 'step by step ... \\boxed{}' suffix."""
    chats = []
    for row in bench.iter_rows(named=True):
        if choices_of(row.get("metadata")) is not None:
            text = row["question"] + choice_suffix
        else:
            text = row["question"] + (math_suffix if row.get("category") == "math" else "")
        chat = [{"role": "system", "content": system_prompt}] if system_prompt else []
        chats.append(chat + [{"role": "user", "content": text}])
    return chats


def eval_answer(response: str) -> str:
    """The answer the verifier sees: the tagged answer when the model used the AM format, else the whole
    response (a base model rarely emits <answer> tags; Math-Verify and the code extractor then take the
    last boxed value or code block, as common evaluation harnesses do)."""
    return answer_part(None, response) or response


def _response_id(model: str, benchmark: str, item_id: str, sample_idx: int) -> str:
    return "e" + hashlib.blake2b(f"{model}|{benchmark}|{item_id}|{sample_idx}".encode(), digest_size=10).hexdigest()


def samples_frame(bench: pl.DataFrame, outs: list[list], model: str, benchmark: str) -> pl.DataFrame:
    """One row per (item, sample) from the engine's completions (objects with text, finish_reason, tokens)."""
    rows = []
    for item, comps in zip(bench.iter_rows(named=True), outs):
        for idx, c in enumerate(comps):
            rows.append({
                "response_id": _response_id(model, benchmark, item["item_id"], idx), "query_id": item["query_id"],
                "item_id": item["item_id"], "sample_idx": idx, "response": c.text, "answer": eval_answer(c.text),
                "think": None, "finish_reason": c.finish_reason, "truncated": c.finish_reason == "length",
                "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                # an engine failure is recorded and later left out of n, never scored as a wrong answer
                "status": "error" if getattr(c, "error", None) else "ok", "error": getattr(c, "error", None)})
    return pl.DataFrame(rows, schema_overrides={"think": pl.String, "error": pl.String})


def score_samples(samples: pl.DataFrame, bench: pl.DataFrame, vcfg, *, sandbox_factory: Callable, judge=None,
                  judge_version: str = "judge/none", log: Callable[[str], None] = lambda m: None,
                  models=None) -> pl.DataFrame:
    """The sample rows with the verifier's verify_score, passed, verifier, status and details."""
    empty = pl.DataFrame()
    outcomes, _ = verify_partition(samples, bench, empty, vcfg, sandbox_factory=sandbox_factory, judge=judge,
                                   judge_version=judge_version, log=log, models=models)
    keep = ["response_id", "category", "verify_score", "passed", "verifier", "verifier_version", "details"]
    return samples.join(outcomes.select(keep + ["status"]).rename({"status": "verify_status"}), on="response_id")


def item_table(scored: pl.DataFrame, k: int) -> pl.DataFrame:
    """Per item: n samples with a verdict, correct count, pass@1 (= correct / n), unbiased pass@k."""
    rows = []
    for (item_id,), g in scored.sort("sample_idx").group_by(["item_id"], maintain_order=True):
        judged = g.filter(~pl.col("verify_status").is_in(NO_VERDICT))
        n, c = judged.height, int(judged["passed"].sum())
        rows.append({
            "item_id": item_id, "query_id": g["query_id"][0], "category": g["category"][0], "n": n, "correct": c,
            "pass_at_1": c / n if n else None, "pass_at_k": pass_at_k(n, c, k) if n >= k else None, "k": k,
            "mean_completion_tokens": float(g["completion_tokens"].mean()), "truncated": int(g["truncated"].sum()),
            "statuses": json.dumps(dict(sorted(g.group_by("verify_status").len().iter_rows()))),
            "samples": json.dumps([{"sample_idx": r["sample_idx"], "passed": r["passed"], "score": r["verify_score"],
                                    "status": r["verify_status"], "finish_reason": r["finish_reason"],
                                    "response": r["response"]} for r in g.iter_rows(named=True)]),
        })
    return pl.DataFrame(rows, schema=ITEM_SCHEMA)


def summary_row(items: pl.DataFrame, samples: int) -> dict:
    """Benchmark scores: pass@1 = mean over items of the mean over their k samples; pass@k per report k."""
    judged = items.filter(pl.col("n") > 0)
    counts = list(zip(judged["n"].to_list(), judged["correct"].to_list()))
    pass_at = {k: mean_pass_at_k(counts, k) for k in report_ks(samples)}
    statuses: dict[str, int] = {}
    for s in items["statuses"].to_list():
        for name, count in json.loads(s).items():
            statuses[name] = statuses.get(name, 0) + count
    total = int(items["n"].sum()) if items.height else 0
    return {
        "n_items": items.height, "n_scored_items": judged.height, "k": samples,
        "pass_at_1": pass_at[1], "pass_at_k": pass_at[samples], "pass_at": json.dumps({str(k): v for k, v in pass_at.items()}),
        "sample_accuracy": float(judged["correct"].sum()) / total if total else None,
        "mean_completion_tokens": float(items["mean_completion_tokens"].mean()) if items.height else None,
        "truncated_rate": float(items["truncated"].sum()) / max(1, items.height * samples),
        "statuses": json.dumps(statuses),
    }
