"""The code verifier against hostile answers (tests/hostile_programs.py): every one scores 0, the
good answers in the same batch still score 1, the host is untouched and the sandbox still works.
Both backends; the local one only as root (it isolates files, network and uids only then)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from am_assets.verify.code_tests import Verdict, score, verify_code
from am_assets.verify.code_tests import CodeJob
from resources.sandbox import DockerSandbox, Limits, LocalSandbox, RunResult, docker_available
from tests.conftest import PROJECT_DIR
from tests.hostile_programs import ASSERTS, CHECK, FUNCTIONAL, STDIO, hostile_corpus

IMAGE = os.environ.get("AM_DISTILL_SANDBOX_IMAGE", "am-distill-sandbox:bookworm")
ROOT = os.geteuid() == 0
UID_BASE = 64000  # its own uid block: the leftover check cannot see other users of the local sandbox
GOOD = {ASSERTS: "def add(a, b):\n    return a + b\n", FUNCTIONAL: "def add(a, b):\n    return a + b\n",
        CHECK: "def add(a, b):\n    return a + b\n", STDIO: "a, b = map(int, input().split())\nprint(a + b)\n"}


@pytest.fixture(scope="module")
def targets():
    base = Path("/var/lib" if ROOT else PROJECT_DIR / ".pytest_cache") / f"am-distill-hostile-{secrets.token_hex(4)}"
    base.mkdir(parents=True)
    secret, victim = base / "secret.txt", base / "victim.txt"
    secret.write_text("TOP-SECRET-" + secrets.token_hex(8))
    secret.chmod(0o600)
    victim.write_text("keep me")
    victim.chmod(0o644)
    base.chmod(0o755)
    yield {"dir": base, "secret": secret, "victim": victim, "escape": PROJECT_DIR / f"ESCAPED-{secrets.token_hex(4)}"}
    shutil.rmtree(base, ignore_errors=True)


def _sandbox(kind: str):
    limits = Limits(timeout_s=4.0, memory_mb=512)
    if kind == "local":
        if not ROOT:
            pytest.skip("the local sandbox isolates files, network and uids only when started as root")
        return LocalSandbox(limits, uid_base=UID_BASE)
    ok, why = docker_available(IMAGE)
    if not ok:
        pytest.skip(f"Docker cannot run here: {why}")
    return DockerSandbox(limits, IMAGE)


@pytest.fixture(scope="module", params=["local", "docker"])
def run(request, targets):
    sb = _sandbox(request.param)
    corpus = hostile_corpus(targets)
    good = [(f"good_{json.loads(tc)['type']}", tc, f"```python\n{code}```\n") for tc, code in GOOD.items()]
    rows = [{"answer": ans, "test_cases": tc} for _, tc, ans in corpus + good]
    verdicts = verify_code(rows, sb, max_tests=10, timeout_s=4.0)
    names = [n for n, _, _ in corpus + good]
    return request.param, sb, dict(zip(names, verdicts)), targets


def test_corpus_is_large_enough(targets):
    assert len(hostile_corpus(targets)) >= 30


def test_every_hostile_answer_scores_zero(run):
    backend, _, verdicts, _ = run
    fooled = {n: (v.status, v.score, json.dumps(v.details)[:300]) for n, v in verdicts.items()
              if not n.startswith("good_") and (v.status != "ok" or v.score != 0.0)}
    assert fooled == {}, f"{backend}: hostile answers not scored 0: {fooled}"


def test_good_answers_in_the_same_batch_are_unharmed(run):
    backend, _, verdicts, _ = run
    hurt = {n: json.dumps(v.details)[:300] for n, v in verdicts.items() if n.startswith("good_") and v.score != 1.0}
    assert hurt == {}, f"{backend}: good answers hurt by their batch: {hurt}"


def test_real_errors_are_reported(run):
    _, _, v, _ = run
    assert v["eq_always_true"].details["tests"][0]["why"] == "assertion failed"  # a handle equals nothing
    assert "returned a generator, not plain data" in v["not_plain_generator"].details["tests"][0]["why"]
    mem = v["memory_bomb"].details
    # MemoryError at the limit, or (a loaded machine) the call's timeout first
    assert ("MemoryError" in mem["tests"][0]["why"] or "timeout" in mem["tests"][0]["why"]
            or mem["solution"].startswith(("memory", "killed")))
    assert "timeout" in v["infinite_loop"].details["tests"][0]["why"]
    assert v["infinite_output"].details["tests"][0]["why"].startswith("output_limit")
    assert v["cpp_compile_bomb"].details.get("compile_error") is not None
    assert "compile error" in v["cpp_include_secret"].details["tests"][0]["why"]
    assert "TOP-SECRET" not in json.dumps({n: x.details for n, x in v.items()})


def test_host_untouched_and_sandbox_still_works(run):
    backend, sb, _, t = run
    assert t["victim"].read_text() == "keep me"
    assert not t["escape"].exists()
    assert PROJECT_DIR.joinpath("pyproject.toml").exists()
    assert subprocess.run(["true"]).returncode == 0
    if backend == "local":  # no process of the batch's uid block survives
        uids = subprocess.run(["ps", "-eo", "uid="], capture_output=True, text=True).stdout.split()
        assert not [u for u in uids if UID_BASE <= int(u) < UID_BASE + 1000]
    else:
        from resources.sandbox_image import _client

        assert _client().containers.list(all=True, filters={"label": "am-distill=sandbox", "status": "exited"}) == []
    again = verify_code([{"answer": f"```python\n{GOOD[ASSERTS]}```", "test_cases": ASSERTS}], sb, 10, 4.0)
    assert again[0].score == 1.0


def test_report_lines_are_validated_and_scores_clamped():
    """The trusted report itself is checked: unknown indices, repeats and malformed lines are
    harness violations in details, never counted."""
    lines = ['{"t": 0, "ok": true, "why": ""}', '{"t": 0, "ok": true, "why": ""}', '{"t": 7, "ok": true}',
             '{"t": -1, "ok": true}', '{"t": 1, "ok": "yes"}', 'garbage', '{"t": 1, "ok": false, "why": "x"}',
             '{"done": true}']
    res = RunResult("ok", 0, "", "", "", 0.1, {"driver": {"reason": "ok", "error": "", "stdout": "\n".join(lines)}})
    v = score(CodeJob(None, 2, "asserts"), res)
    assert isinstance(v, Verdict) and (v.status, v.score, v.details["tests_passed"]) == ("ok", 0.5, 1)
    assert len(v.details["violations"]) == 5
    v = score(CodeJob(None, 2, "asserts"), res, mode="all_or_nothing")
    assert v.score == 0.0
