"""The code sandbox on real code: HumanEval canonical solutions (and their `return None` twins) and
hostile raw programs, in both backends (Docker is started here when installed). MBPP, C++, wrong
variants and hostile answers: tests/test_verify_code_real.py and tests/test_verify_code_hostile.py."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from am_assets.ingest.adapters import humaneval_rows
from am_assets.verify.code_tests import verify_code
from resources.sandbox import DockerSandbox, Limits, LocalSandbox, Program, docker_available
from tests.conftest import PROJECT_DIR

IMAGE = os.environ.get("AM_DISTILL_SANDBOX_IMAGE", "am-distill-sandbox:bookworm")
ROOT = os.geteuid() == 0


def _docker() -> DockerSandbox:
    ok, why = docker_available(IMAGE)  # starts dockerd / builds the image when it can
    if not ok:
        pytest.skip(f"Docker cannot run here: {why}")
    return DockerSandbox(Limits(timeout_s=5.0), IMAGE)


@pytest.fixture(scope="module", params=["local", "docker"])
def sandbox(request):
    return LocalSandbox(Limits(timeout_s=5.0)) if request.param == "local" else _docker()


def _fenced(code: str) -> str:
    return f"Here is the solution.\n```python\n{code}```\n"


def test_humaneval_canonical_pass_and_return_none_fails(sandbox):
    rows = list(humaneval_rows())
    assert len(rows) == 164
    good, bad = [], []
    for r in rows:
        meta = json.loads(r["metadata"])
        good.append({"answer": _fenced(meta["prompt"] + meta["canonical_solution"]), "test_cases": r["test_cases"]})
        bad.append({"answer": _fenced(meta["prompt"] + "    return None\n"), "test_cases": r["test_cases"]})
    verdicts = verify_code(good + bad, sandbox, max_tests=10, timeout_s=5.0)
    assert {v.status for v in verdicts} == {"ok"}
    failed_good = [r["source_row"] for r, v in zip(rows, verdicts[:164]) if v.score != 1.0]
    passed_bad = [r["source_row"] for r, v in zip(rows, verdicts[164:]) if v.score != 0.0]
    assert failed_good == [], f"{sandbox.name}: canonical solutions failing: {failed_good}"
    assert passed_bad == [], f"{sandbox.name}: `return None` bodies passing: {passed_bad}"
    assert verdicts[0].details["tests_total"] == 1 and verdicts[0].details["test_type"] == "check"


def test_stdio_and_functional_layouts_score_fractionally():
    sb = LocalSandbox(Limits(timeout_s=5.0))
    stdio = json.dumps({"type": "stdio", "cases": [{"input": "2 3\n", "output": "5\n"},
                                                   {"input": "10 -4\n", "output": "6"},
                                                   {"input": "1 1\n", "output": "3"}]})
    functional = json.dumps({"type": "functional", "fn_name": "add",
                             "cases": [{"input": [1, 2], "output": 3}, {"input": [[1], [2]], "output": [1, 2]},
                                       {"input": [0, 0], "output": 1}]})
    code = _fenced("def add(a, b):\n    return a + b\n\nif __name__ == '__main__':\n"
                   "    a, b = map(int, input().split())\n    print(add(a, b))\n")
    v_stdio, v_fn, v_none, v_nocode = verify_code(
        [{"answer": code, "test_cases": stdio}, {"answer": code, "test_cases": functional},
         {"answer": code, "test_cases": None}, {"answer": "no code here", "test_cases": stdio}], sb, 10, 5.0)
    assert (v_stdio.status, round(v_stdio.score, 3), v_stdio.details["tests_passed"]) == ("ok", 0.667, 2)
    assert (v_fn.status, round(v_fn.score, 3)) == ("ok", 0.667)
    assert v_none.status == "no_reference"
    assert (v_nocode.status, v_nocode.score) == ("ok", 0.0)


# ---------------------------------------------------------------- hostile programs


@pytest.fixture(scope="module")
def host_targets():
    """A host dir with a file the programs try to read, overwrite and delete, plus a listening socket."""
    base = Path("/var/lib" if ROOT else PROJECT_DIR / ".pytest_cache") / f"am-distill-hostile-{secrets.token_hex(4)}"
    base.mkdir(parents=True)
    secret = base / "secret.txt"
    secret.write_text("TOP-SECRET-" + secrets.token_hex(8))
    secret.chmod(0o600)
    victim = base / "victim.txt"
    victim.write_text("keep me")
    victim.chmod(0o644)
    base.chmod(0o755)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    yield {"dir": base, "secret": secret, "victim": victim, "port": server.getsockname()[1]}
    server.close()
    shutil.rmtree(base, ignore_errors=True)


def _hostile(t) -> dict[str, str]:
    escape = PROJECT_DIR / f"ESCAPED-{secrets.token_hex(4)}"
    t["escape"] = escape
    return {
        "fork_bomb": "import os\nwhile True:\n    os.fork()\n",
        "memory_bomb": "blocks = []\nwhile True:\n    blocks.append(b'x' * (100 * 1024 * 1024))\n",
        "infinite_loop": "while True:\n    pass\n",
        "sleep_past_timeout": "import time\ntime.sleep(60)\n",
        "network": f"import socket\nsocket.create_connection(('127.0.0.1', {t['port']}), timeout=3)\n"
                   "socket.create_connection(('1.1.1.1', 53), timeout=3)\n",
        "write_outside": f"open({str(escape)!r}, 'w').write('x')\n",
        "read_host_file": f"print(open({str(t['secret'])!r}).read())\n",
        "kill_parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
        "huge_output": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
        "delete_files": f"import os, shutil\nos.remove({str(t['victim'])!r})\n",
        "delete_everything": f"import shutil\nfor d in ({str(t['dir'])!r}, '..', '/tmp'):\n"
                             "    shutil.rmtree(d, ignore_errors=True)\nprint('tried')\n",
        "after_all_that": "print('still running')\n",
    }


@pytest.fixture(scope="module", params=["local", "docker"])
def hostile_run(request, host_targets):
    if request.param == "local" and not ROOT:
        pytest.skip("the local sandbox isolates files and network only when started as root")
    # its own uid range, so the leftover-process check cannot see other users of the local sandbox
    sb = LocalSandbox(Limits(timeout_s=8.0, memory_mb=512), uid_base=62000) if request.param == "local" else _docker()
    if request.param == "docker":
        sb.limits = Limits(timeout_s=8.0, memory_mb=512)
    programs = _hostile(host_targets)
    results = dict(zip(programs, sb.run([Program(code) for code in programs.values()])))
    return request.param, results, host_targets


def test_hostile_programs_are_contained_with_a_reason(hostile_run):
    backend, r, t = hostile_run
    expect_reason = {"fork_bomb": {"exit:1", "timeout", "killed", "memory"}, "memory_bomb": {"memory", "killed"},
                     "infinite_loop": {"timeout", "cpu_limit"}, "sleep_past_timeout": {"timeout"},
                     "huge_output": {"output_limit"}}
    for name, reasons in expect_reason.items():
        assert r[name].reason in reasons, (backend, name, r[name])
    for name in ("network", "write_outside", "read_host_file", "delete_files"):
        assert r[name].reason.startswith("exit:"), (backend, name, r[name])
        assert r[name].error, (backend, name)
    assert "refused" in r["network"].error.lower() or "unreachable" in r["network"].error.lower()
    assert r["kill_parent"].reason in ("exit:1", "killed"), r["kill_parent"]
    assert r["sleep_past_timeout"].duration_s < 15
    assert len(r["huge_output"].stdout) <= Limits().output_bytes
    assert t["secret"].read_text().split("-")[0] == "TOP" and "TOP-SECRET" not in r["read_host_file"].stdout
    expected_read_error = "PermissionError" if backend == "local" else "FileNotFoundError"
    assert expected_read_error in r["read_host_file"].error
    assert r["after_all_that"].ok and r["after_all_that"].stdout.strip() == "still running"
    assert r["delete_everything"].stdout.strip() == "tried"


def test_hostile_programs_leave_the_host_alone(hostile_run):
    backend, _, t = hostile_run
    assert t["victim"].read_text() == "keep me"
    assert not t["escape"].exists()
    assert PROJECT_DIR.joinpath("pyproject.toml").exists()
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes
    if backend == "local":  # no process of the program uids survives
        leftovers = subprocess.run(["ps", "-eo", "uid="], capture_output=True, text=True).stdout.split()
        assert not [u for u in leftovers if 62000 <= int(u) < 62100]
    else:
        from resources.sandbox_image import _client

        # every batch container is force-removed; a leak would stay behind as exited
        assert _client().containers.list(all=True, filters={"label": "am-distill=sandbox", "status": "exited"}) == []
