"""`--parallel N` builds the same tables as a sequential build, with runs in N worker processes.

A tiny benchmarks.scale project (import teachers, no vLLM): 2 teachers x 3 shards built once
sequentially and once, afresh, with 2 workers, each time with a new lake and Dagster instance.
"""

import shutil

import dagster as dg
import polars as pl
import yaml

from am_distill.cli.runner import materialize_all
from benchmarks.scale import write_project
from definitions import build_defs
from resources.lake import LakeResource

TABLES = ("unique_queries", "teacher_responses", "verification_outcomes", "difficulty_scores")
SELECT = ["raw_queries", "clean_queries", "query_embeddings", "benchmarks", "dedup_clusters", *TABLES]


def _stable(df: pl.DataFrame) -> pl.DataFrame:
    """The table without what differs between two builds of the same data (times, run ids)."""
    volatile = [c for c, t in df.schema.items()
                if isinstance(t, pl.Datetime) or any(w in c for w in ("run_id", "seconds", "_at", "latency"))]
    df = df.drop(volatile)
    return df.sort(df.columns[0], *df.columns[1:2])


def _build(root, parallel: int) -> tuple[dict[str, pl.DataFrame], list]:
    root.mkdir()
    write_project(root, queries=40, teachers=2, samples=2, shards=3, semantic=False)
    cfg = yaml.safe_load((root / "pipeline.yaml").read_text())
    cfg["benchmarks"] = []
    (root / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
    defs = build_defs(root / "pipeline.yaml")
    with dg.instance_for_test() as instance:
        report = materialize_all(defs, instance, select=SELECT, log=lambda *_: None, parallel=parallel)
    assert not report.failures, report.failures
    lake = LakeResource(root=str(root / "lake"))
    return {t: _stable(lake.read(t)) for t in TABLES}, report.ran


def test_parallel_build_equals_sequential(tmp_path):
    # the same folder for both: an import teacher's fingerprint (so every response id) covers its path
    sequential, _ = _build(tmp_path / "build", 1)
    shutil.rmtree(tmp_path / "build")
    parallel, ran = _build(tmp_path / "build", 2)
    assert len([pk for name, pk in ran if name == "verification_outcomes"]) == 6  # 2 teachers x 3 shards
    for table in TABLES:
        assert parallel[table].height > 0
        differ = [c for c in parallel[table].columns if not parallel[table][c].equals(sequential[table][c])]
        assert not differ, (table, differ)
        key = parallel[table].columns[0]
        if table in ("unique_queries", "difficulty_scores"):
            assert parallel[table][key].n_unique() == parallel[table].height  # no duplicate keys
    assert parallel["verification_outcomes"]["response_id"].n_unique() == parallel["verification_outcomes"].height
