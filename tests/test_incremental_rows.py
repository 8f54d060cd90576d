"""Row-level incremental work when only new queries arrive (issue 18): teacher_responses appends the
new rows (no rewrite of the partition) with the same data version a full write gives, an import teacher
reads only the partition's questions, and verification verifies only the new responses while every
unchanged row keeps its verdict. No Dagster run and no vLLM: the functions the assets call."""

import json
from types import SimpleNamespace

import polars as pl

from am_assets.core.schema import query_id
from am_assets.distill.generate import fill_partition
from am_assets.verify.cache import appended_rows
from am_assets.verify.logic import verify_partition
from resources.config import ImportTeacher, VerificationConfig
from resources.lake import LakeResource, content_hash
from resources.pool import ModelPool

N = 2
QUESTIONS = [f"What is {a} + {a + 3}?" for a in range(12)]


def _queries(questions):
    return pl.DataFrame({"query_id": [query_id(q) for q in questions], "question": questions,
                         "category": ["math"] * len(questions)}).sort("query_id")


def _teacher(tmp_path):
    path = tmp_path / "teacher.jsonl"
    with open(path, "w") as f:
        for a in range(len(QUESTIONS)):  # sample 0 right, sample 1 right only for even a
            for wrong in (0, a % 2):
                f.write(json.dumps({"question": QUESTIONS[a], "response":
                                    f"<think>add</think><answer>\\boxed{{{2 * a + 3 + wrong}}}</answer>"}) + "\n")
    return ImportTeacher(name="t0", kind="import", path=path, sampling={"n": N})


def test_new_queries_append_and_verify_only_new_rows(tmp_path):
    teacher = _teacher(tmp_path)
    lake, part = LakeResource(root=str(tmp_path / "lake")), {"teacher": "t0", "shard": "s00"}
    with ModelPool() as pool:
        engines = SimpleNamespace(pool=pool)  # the resource's pool, holding the real import engine
        first = fill_partition(lake, teacher, "s00", _queries(QUESTIONS[:8]), engines=engines, log=lambda m: None)
        assert first.generated == 8 * N
        files = lake.file_count("teacher_responses", part)
        plus = fill_partition(lake, teacher, "s00", _queries(QUESTIONS[:10]), engines=engines, log=lambda m: None)
        assert (plus.generated, plus.kept, plus.removed) == (2 * N, 8 * N, 0)
        # the new rows are one appended file: the partition's old file is not rewritten
        assert lake.history("teacher_responses", 1)[0]["operationParameters"]["mode"] == "Append"
        assert lake.file_count("teacher_responses", part) == files + 1
        # same content, same data version as a fresh full write of the same queries
        fresh = LakeResource(root=str(tmp_path / "fresh"))
        full = fill_partition(fresh, teacher, "s00", _queries(QUESTIONS[:10]), engines=engines, log=lambda m: None)
        assert content_hash(plus.rows) == content_hash(full.rows) == content_hash(lake.read("teacher_responses",
                                                                                             part).drop(*part))
        # a query leaves the shard: a DELETE of its rows, not a rewrite
        gone = fill_partition(lake, teacher, "s00", _queries(QUESTIONS[1:10]), engines=engines, log=lambda m: None)
        assert gone.removed == N and gone.generated == 0
        assert lake.history("teacher_responses", 1)[0]["operation"] == "DELETE"
        assert set(lake.read("teacher_responses", part)["query_id"]) == set(_queries(QUESTIONS[1:10])["query_id"])
        # the rows returned are the partition as written (kept in memory, not read back)
        assert content_hash(gone.rows) == content_hash(lake.read("teacher_responses", part).drop(*part))

    # verification: the cache answers the old rows by a join; only the new responses reach a verifier
    vcfg = VerificationConfig(math_workers=1)
    refs = pl.DataFrame({"query_id": [query_id(q) for q in QUESTIONS], "category": ["math"] * len(QUESTIONS),
                         "question": QUESTIONS, "reference_answer": [str(2 * a + 3) for a in range(len(QUESTIONS))]})
    old = first.rows
    cached, stats = verify_partition(old, refs, pl.DataFrame(), vcfg, sandbox_factory=None)
    assert stats["verified"] == old.height and cached["passed"].sum() == 8 + 4
    logs = []
    again, stats = verify_partition(plus.rows, refs, cached, vcfg, sandbox_factory=None, log=logs.append)
    assert (stats["verified"], stats["reused"]) == (2 * N, 8 * N) and logs[0] == f"math: verifying {2 * N} responses"
    kept = again.join(old.select("response_id"), on="response_id", how="semi").sort("response_id")
    assert kept.equals(cached.sort("response_id"))  # unchanged rows: the very same verdict rows
    scratch, _ = verify_partition(plus.rows, refs, pl.DataFrame(), vcfg, sandbox_factory=None)
    assert again.sort("response_id").equals(scratch.sort("response_id"))  # as if verified from scratch
    # the asset appends just the new responses' rows: the cached ones are all there, unchanged
    stored = cached.with_columns(pl.lit("t0").alias("teacher"))  # as read back: partition columns too
    added = appended_rows(again, stored)
    assert sorted(added["response_id"]) == sorted(again.join(old, on="response_id", how="anti")["response_id"])
    assert appended_rows(cached, cached).height == 0
    # any stored row changed or gone takes a rewrite: a flipped flag, a moved threshold, a dropped response
    flipped = again.with_columns(pl.when(pl.col("response_id") == old["response_id"][0]).then(~pl.col("repetitive"))
                                 .otherwise(pl.col("repetitive")).alias("repetitive"))
    assert appended_rows(flipped, stored) is None
    assert appended_rows(again.with_columns(pl.lit(False).alias("passed")), stored) is None
    assert appended_rows(again.filter(pl.col("response_id") != old["response_id"][0]), stored) is None
    # a changed reference answer is a changed input: that query's rows are verified again
    moved = refs.with_columns(pl.when(pl.col("query_id") == query_id(QUESTIONS[0])).then(pl.lit("0"))
                              .otherwise(pl.col("reference_answer")).alias("reference_answer"))
    _, stats = verify_partition(plus.rows, moved, again, vcfg, sandbox_factory=None)
    assert (stats["verified"], stats["reused"]) == (N, 10 * N - N)


def test_a_rival_commit_during_a_fill_is_read_back(tmp_path, monkeypatch):
    """The partition is kept in memory only while every commit since the read is the fill's own: a row a
    rival appends between the fill's read and its write is in the result, as the table holds it."""
    teacher = _teacher(tmp_path)
    lake, part = LakeResource(root=str(tmp_path / "lake")), {"teacher": "t0", "shard": "s00"}
    real_write = LakeResource.write_partition
    with ModelPool() as pool:
        engines = SimpleNamespace(pool=pool)
        fill_partition(lake, teacher, "s00", _queries(QUESTIONS[:8]), engines=engines, log=lambda m: None)
        rival = lake.read("teacher_responses", part).drop(*part).head(1).with_columns(
            pl.lit("rival-row").alias("response_id"), pl.lit("rival-query").alias("query_id"))

        def rival_then_write(self, table, df, partition, **kw):
            if kw.get("mode") == "append" and "rival-row" not in df["response_id"].to_list():
                real_write(self, table, rival, partition, mode="append")  # another process's commit
            return real_write(self, table, df, partition, **kw)

        monkeypatch.setattr(LakeResource, "write_partition", rival_then_write)
        plus = fill_partition(lake, teacher, "s00", _queries(QUESTIONS[:10]), engines=engines, log=lambda m: None)
    assert "rival-row" in plus.rows["response_id"].to_list()
    monkeypatch.undo()
    assert content_hash(plus.rows) == content_hash(lake.read("teacher_responses", part).drop(*part))
