"""Crash resume: a generation run killed with SIGKILL mid-partition, then rerun, leaves exactly the
wanted keys, none twice, and keeps every row committed before the kill."""

import os
import signal
import subprocess
import sys
import time

import dagster as dg
import polars as pl
import pytest

from am_assets.distill.logic import response_id
from am_assets.core.schema import query_id
from tests.conftest import PROJECT_DIR, materialize
from tests.distill_helpers import mkey, vllm_engines, vllm_teacher, write_unique_queries  # noqa: F401

# short answers finish (and commit) long before the stories, so the kill lands mid-partition
QUESTIONS = ([f"What is {i} + {i + 1}? Reply with the number only." for i in range(12)]
             + [f"Write a long story about the number {i}." for i in range(12)])
N = 2


def _committed(lake) -> pl.DataFrame:
    return lake.read("teacher_responses")


def test_sigkill_mid_partition_then_resume(project, instance, tmp_path, vllm_engines):
    # chunk_size 1: every finished prompt is its own Delta append, so the kill lands between commits
    teacher = vllm_teacher("smol", 0.7, n=N, max_tokens=160, chunk_size=1)
    path = project.write({"shards": 1, "teachers": [teacher]})
    lake = project.lake()
    write_unique_queries(lake, {"s00": QUESTIONS})
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.distill_worker", str(path), "smol", "s00"],
                                cwd=PROJECT_DIR, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 900
        while True:  # wait for some, not all, prompts to be committed
            assert proc.poll() is None, f"worker ended before the kill ({proc.returncode}); log: {log}"
            assert time.time() < deadline, f"no commit within 900 s; log: {log}"
            if lake.exists("teacher_responses") and _committed(lake).height >= 2 * N:
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and its vLLM engine processes
        proc.wait()
    before = _committed(lake)
    assert 0 < before["query_id"].n_unique() < len(QUESTIONS), "the kill should land mid-partition"
    assert before["response_id"].n_unique() == before.height

    project.pool = vllm_engines  # the rerun in this process uses the session's engine
    result = materialize(project.defs(), instance, ["teacher_responses"], partition_key=mkey("smol", "s00"))
    mat = result.asset_materializations_for_node("teacher_responses")[0]
    final = _committed(lake)
    fp = project.cfg().teacher("smol").fingerprint()
    expected = {response_id(query_id(q), fp, i) for q in QUESTIONS for i in range(N)}
    assert final.height == len(expected) and set(final["response_id"]) == expected  # exact keys, none twice
    assert mat.metadata["generated"].value == len(expected) - before.height  # only the missing keys
    kept = final.join(before.select("response_id", pl.col("response").alias("before")), on="response_id")
    assert kept.height == before.height and (kept["response"] == kept["before"]).all()  # nothing lost or redone
    # the appended chunks were compacted into one rewrite of the partition
    assert len(lake.table("teacher_responses").file_uris()) <= 2
    assert isinstance(result, dg.ExecuteInProcessResult)
