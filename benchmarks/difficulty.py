"""Difficulty grading + Stage I over 40M synthetic score rows (3.34M queries x 3 teachers x 4 samples).

    .venv/bin/python -m benchmarks.difficulty [--rows 40000000] [--shards 8]

The synthetic verification_outcomes (no text) are written to a Delta lake like the real table (one
partition per teacher x shard); the measured process then runs what the assets run: per shard
`difficulty_table` over `lake.scan` -> `write_partition`, then `pool_responses` + `stage1_decisions` +
`stage1_select` over the whole lake. Generation is not measured.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from benchmarks._util import figure, run_measured

TEACHERS = {"r1.5b": 0.35, "r7b": 0.55, "r1": 0.75}  # weak -> strong: mean skill
SAMPLES = 4
# DeepDistill Fig. 7 category shares
CATEGORIES = {"other": 0.555, "math": 0.248, "code": 0.147, "science": 0.027, "if": 0.023}
THRESHOLDS = {"math": 0.99, "code": 0.99, "if": 0.99, "science": 4.99, "other": 0.7}


def generate(root: str, queries: int, shards: int, seed: int = 0) -> int:
    """Writes verification_outcomes rows to a lake at root; returns the number of rows."""
    import numpy as np
    import polars as pl

    from resources.config import shard_key
    from resources.lake import LakeResource

    lake = LakeResource(root=root)
    rng = np.random.default_rng(seed)
    cats = np.array(list(CATEGORIES))
    per_shard = -(-queries // shards)
    total = 0
    for s in range(shards):
        lo, hi = s * per_shard, min(queries, (s + 1) * per_shard)
        n = hi - lo
        qid = pl.Series("query_id", np.arange(lo, hi)).cast(pl.String).str.zfill(24)
        qid = ("q" + qid).to_numpy()
        cat = rng.choice(cats, size=n, p=list(CATEGORIES.values()))
        hardness = rng.random(n)  # per query: how hard it is for everyone
        for t, skill in TEACHERS.items():
            p = np.clip(skill + 0.5 - hardness, 0.02, 0.98)  # per query success probability
            p4 = np.repeat(p, SAMPLES)
            c4 = np.repeat(cat, SAMPLES)
            u = rng.random(n * SAMPLES)
            score = np.where(u < p4, 1.0, 0.0)
            score = np.where(c4 == "code", np.floor(np.clip(p4 + rng.normal(0, 0.3, n * SAMPLES), 0, 1) * 10) / 10, score)
            score = np.where(c4 == "science", np.where(u < p4, 5.0, np.round(rng.random(n * SAMPLES) * 4.9, 1)), score)
            score = np.where(c4 == "other", np.clip(p4 + rng.normal(0, 0.1, n * SAMPLES), 0, 1), score)
            df = pl.DataFrame({
                "response_id": [f"r{t}{i}" for i in range(lo * SAMPLES, hi * SAMPLES)],
                "query_id": np.repeat(qid, SAMPLES), "category": c4, "verify_score": score,
                "status": np.where(rng.random(n * SAMPLES) < 0.002, "timeout", "ok"),
                "has_think": rng.random(n * SAMPLES) > 0.01, "has_answer": np.full(n * SAMPLES, True),
                "truncated": rng.random(n * SAMPLES) < 0.02, "repetitive": np.full(n * SAMPLES, False),
            })
            lake.write_partition("verification_outcomes", df, {"teacher": t, "shard": shard_key(s)})
            total += df.height
            del df
    return total


def grade_and_select(root: str, shards: int) -> dict:
    """What difficulty_scores (each shard) and training_mix Stage I run, on the lake at root."""
    import warnings

    warnings.filterwarnings("ignore")  # Dagster beta notices from importing the stage packages

    from am_assets.difficulty.logic import OUTCOME_COLUMNS, difficulty_table
    from am_assets.mix.select import pool_responses, stage1_decisions, stage1_select
    from resources.config import MixConfig, shard_key
    from resources.lake import LakeResource

    lake = LakeResource(root=root)
    teachers = list(TEACHERS)
    t0 = time.perf_counter()
    graded = 0
    for s in range(shards):
        outcomes = lake.scan("verification_outcomes", {"shard": shard_key(s)}).select(OUTCOME_COLUMNS)
        df = difficulty_table(outcomes, teachers=teachers, reference="r1", thresholds=THRESHOLDS).collect(engine="streaming")
        lake.write_partition("difficulty_scores", df.sort("query_id"), {"shard": shard_key(s)})
        graded += df.height
        del df
    t1 = time.perf_counter()
    mix = MixConfig()
    pool = pool_responses(lake.scan("verification_outcomes").select(
        "response_id", "query_id", "teacher", "category", "verify_score", "status", "has_think", "has_answer",
        "truncated", "repetitive"), teachers=["r1"], thresholds=THRESHOLDS, exclude_flags=mix.exclude_flags)
    decisions = stage1_decisions(pool, lake.scan("difficulty_scores"), thresholds=THRESHOLDS,
                                 cv_threshold=mix.cv_threshold, other_keep_prob=mix.other_keep_prob,
                                 seed=mix.seed).collect(engine="streaming")
    selected = stage1_select(pool, decisions.lazy()).select("response_id", "query_id", "category").collect(engine="streaming")
    t2 = time.perf_counter()
    return {"queries": graded, "difficulty_s": t1 - t0, "stage1_s": t2 - t1, "selected": selected.height,
            "kept_queries": int(decisions["decision"].str.starts_with("stage1:").sum()),
            "by_category": dict(selected.group_by("category").len().iter_rows())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=40_080_000, help="score rows (queries x 3 teachers x 4)")
    parser.add_argument("--shards", type=int, default=8)
    args = parser.parse_args()
    queries = args.rows // (len(TEACHERS) * SAMPLES)
    with tempfile.TemporaryDirectory(prefix="bench_difficulty_") as tmp:
        rows, gen_s, _ = run_measured(generate, tmp, queries, args.shards)
        print(f"generated {rows:,} score rows ({queries:,} queries) in {gen_s:.0f}s (not measured)", flush=True)
        out, seconds, peak = run_measured(grade_and_select, tmp, args.shards)
    print(f"difficulty {out['difficulty_s']:.1f}s, Stage I {out['stage1_s']:.1f}s; {out['kept_queries']:,} queries "
          f"kept, {out['selected']:,} responses selected {out['by_category']}", flush=True)
    figure(f"difficulty + Stage I seconds ({rows:,} score rows)", seconds, "s", "< 300")
    figure("difficulty + Stage I peak memory", peak / 2**30, "GiB", "< 8")


if __name__ == "__main__":
    main()
