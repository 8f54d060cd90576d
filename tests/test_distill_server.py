"""The `openai_server` engine against a real `vllm serve` on loopback, and its error path."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import polars as pl
import pytest

from am_assets.core.schema import query_id
from resources.models import resolve_model
from tests.conftest import materialize
from tests.distill_helpers import QUESTIONS, mkey, write_unique_queries

SECRET = "sk-test-not-a-real-key-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """vLLM's OpenAI-compatible server for the default model folder; stopped (its whole process group) at the end."""
    port = _free_port()
    model = resolve_model("smollm2-135m")
    log = tmp_path_factory.mktemp("serve") / "vllm_serve.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_API_KEY": SECRET}
    # float32: this CPU has no native bf16 (resources/engines.py resolve_dtype). The `vllm serve` CLI of
    # vllm-cpu 0.32 fails on its own version lookup (the distribution is named vllm-cpu); this module is
    # the same server
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--host", "127.0.0.1", "--port", str(port),
           "--served-model-name", "smol", "--max-model-len", "1024", "--dtype", "float32", "--enforce-eager",
           # vLLM-CPU crashes on seeded requests whose prefill is chunked (see resources/engines.py)
           "--no-enable-chunked-prefill", "--max-num-batched-tokens", "8192"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}; log: {log}\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail(f"vllm serve did not come up in 600 s; log: {log}")
            time.sleep(2)
        yield f"{base}/v1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_openai_server_teacher_generates(server, project, instance, monkeypatch):
    monkeypatch.setenv("TEST_VLLM_KEY", SECRET)
    project.write({"shards": 1, "teachers": [
        {"name": "served", "kind": "openai_server", "base_url": server, "model": "smol", "api_key_env": "TEST_VLLM_KEY",
         "concurrency": 4, "chunk_size": 2, "sampling": {"n": 2, "temperature": 0.7, "max_tokens": 24}},
        {"name": "unreachable", "kind": "openai_server", "base_url": "http://127.0.0.1:9/v1", "model": "smol",
         "api_key_env": "TEST_VLLM_KEY", "max_retries": 1, "timeout_s": 5,
         "sampling": {"n": 2, "max_tokens": 8}},
        {"name": "wrong_key", "kind": "openai_server", "base_url": server, "model": "smol", "max_retries": 0,
         "sampling": {"n": 1, "max_tokens": 8}},
    ]})
    # an open question: its two samples differ unless both requests carried the same seed (an arithmetic
    # answer may legitimately come out the same twice: "2 + 3 = 5")
    questions = QUESTIONS[:2] + ["Write one sentence about the sea."]
    write_unique_queries(project.lake(), {"s00": questions})
    defs = project.defs()
    for teacher in ("served", "unreachable", "wrong_key"):
        assert materialize(defs, instance, ["teacher_responses"], partition_key=mkey(teacher, "s00")).success
    df = project.lake().read("teacher_responses")

    served = df.filter(pl.col("teacher") == "served")
    assert served.height == 6 and set(served["query_id"]) == {query_id(q) for q in questions}
    assert (served["status"] == "ok").all() and (served["engine"] == "openai_server").all()
    assert (served["completion_tokens"] <= 24).all() and (served["prompt_tokens"] > 0).all()
    assert served["response"].str.len_chars().min() > 0 and served["latency_s"].min() > 0
    # samples of one query differ (seed + sample index per request)
    open_samples = served.filter(pl.col("query_id") == query_id(questions[2]))["response"].to_list()
    assert len(set(open_samples)) == 2

    down = df.filter(pl.col("teacher") == "unreachable")
    assert down.height == 6 and (down["status"] == "error").all()
    assert down["error"].str.contains("ConnectError").all() and down["error"].str.contains("after 2 attempts").all()
    denied = df.filter(pl.col("teacher") == "wrong_key")  # no key sent: the server answers 401, not retried
    assert (denied["status"] == "error").all() and denied["error"].str.contains("HTTP 401").all()
    # the key is nowhere in the table
    text = df.select(pl.concat_str(pl.all().cast(pl.String), separator="|", ignore_nulls=True)).to_series()
    assert not text.str.contains(SECRET, literal=True).any()

    # a rerun retries the failed rows only (served rows stay)
    again = materialize(defs, instance, ["teacher_responses"], partition_key=mkey("served", "s00"))
    assert again.asset_materializations_for_node("teacher_responses")[0].metadata["generated"].value == 0
