"""Code verifier: the last fenced code block of the answer, run against the query's first N tests in
the sandbox; score = passed / total.

`test_cases` layouts (am_assets/schema.py): check (HumanEval `check(candidate)`: one test), asserts
(MBPP: each assert is a test), functional (each case is a call compared with the expected value),
test_code (AM 1.4M: one test), stdio (each case is its own run with that stdin, stdout compared
line by line). All tests of one non-stdio response run in one program: the solution is executed as a
module (so its `if __name__ == "__main__":` block does not run), then each test in turn, reporting
through lines tagged with a random nonce. A test that a crash or timeout keeps from reporting counts
as failed; the program's reason (timeout, memory, ...) is kept in `details`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from am_assets.verify.base import Verdict, answer_part, last_code_block, no_reference
from resources.sandbox import Program, RunResult, Sandbox

NAME = "code-sandbox"
VERSION = "code-sandbox/1"
PY_LANGS = (None, "python", "py", "python3")

_HARNESS = '''import json as _j, sys as _s
_N = {nonce!r}
_g = {{"__name__": "__solution__", "__builtins__": __builtins__}}
def _report(i, ok, why=""):
    _s.stdout.write("\\n%s %d %s %s\\n" % (_N, i, "ok" if ok else "fail", why)); _s.stdout.flush()
def _eq(got, want):
    if got == want: return True
    try: return _j.loads(_j.dumps(got, default=str)) == want
    except Exception: return False
try:
    exec(compile({solution!r}, "solution.py", "exec"), _g)
    exec(compile({setup!r}, "setup.py", "exec"), _g)
except BaseException as _e:
    _s.stdout.write("\\n%s setup fail %s\\n" % (_N, type(_e).__name__)); _s.exit(1)
_g["_eq"], _g["_j"] = _eq, _j
for _i, _t in enumerate({tests!r}):
    try:
        exec(compile(_t, "test_%d.py" % _i, "exec"), _g)
        _report(_i, True)
    except BaseException as _e:
        _report(_i, False, type(_e).__name__)
'''


@dataclass
class CodeJob:
    """The programs of one response and how to read their results back."""

    programs: list[Program]
    total: int
    kind: str
    nonce: str = ""
    expected: list[str] | None = None  # stdio: expected stdout per program
    verdict: Verdict | None = None  # decided without running anything


def _functional_test(fn: str, case: dict) -> str:
    args = case.get("input", [])
    call = f"_f(**_j.loads({json.dumps(args)!r}))" if isinstance(args, dict) else (
        f"_f(*_j.loads({json.dumps(args if isinstance(args, list) else [args])!r}))")
    return (f"_f = globals().get({fn!r}) or getattr(globals()['Solution'](), {fn!r})\n"
            f"assert _eq({call}, _j.loads({json.dumps(case.get('output'))!r}))")


def plan(answer: str, tests_json: str | None, max_tests: int, timeout_s: float) -> CodeJob:
    if not tests_json:
        return CodeJob([], 0, "", verdict=no_reference("test_cases"))
    try:
        tests = json.loads(tests_json)
        kind = tests["type"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        return CodeJob([], 0, "", verdict=Verdict(0.0, "verifier_error", {"error": f"test_cases is not valid: {e}"}))
    code, lang = last_code_block(answer)
    if code is None:
        return CodeJob([], 0, kind, verdict=Verdict(0.0, "ok", {"reason": "no fenced code block in the answer"}))
    if lang not in PY_LANGS:
        return CodeJob([], 0, kind, verdict=Verdict(0.0, "verifier_error", {"error": f"language {lang!r} is not run here"}))
    if kind == "stdio":
        cases = tests.get("cases", [])[:max_tests]
        if not cases:
            return CodeJob([], 0, kind, verdict=no_reference("stdio test cases"))
        return CodeJob([Program(code, str(c.get("input", "")), timeout_s) for c in cases], len(cases), kind,
                       expected=[str(c.get("output", "")) for c in cases])
    setup = ""
    if kind == "check":
        units = [f"{tests['test']}\ncheck({tests['entry_point']})"]
    elif kind == "test_code":
        unit = tests["test"]
        if "def check(" in unit and "\ncheck(" not in unit and tests.get("entry_point"):
            unit += f"\ncheck({tests['entry_point']})"
        units = [unit]
    elif kind == "asserts":
        setup, units = tests.get("setup") or "", list(tests.get("asserts", []))[:max_tests]
    elif kind == "functional":
        units = [_functional_test(tests["fn_name"], c) for c in tests.get("cases", [])[:max_tests]]
    else:
        return CodeJob([], 0, kind, verdict=Verdict(0.0, "verifier_error", {"error": f"unknown test_cases type {kind!r}"}))
    if not units:
        return CodeJob([], 0, kind, verdict=no_reference("test cases"))
    nonce = secrets.token_hex(8)
    program = _HARNESS.format(nonce=nonce, solution=code, setup=setup, tests=units)
    return CodeJob([Program(program, "", timeout_s)], len(units), kind, nonce=nonce)


def _norm_out(text: str) -> list[str]:
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def score(job: CodeJob, results: list[RunResult]) -> Verdict:
    if job.verdict is not None:
        return job.verdict
    broken = [r for r in results if r.reason == "sandbox_error"]
    if broken:  # the sandbox failed, not the program: no verdict
        return Verdict(0.0, "verifier_error", {"error": broken[0].error, "tests_total": job.total})
    runs = [{"reason": r.reason, "error": r.error[:200], "duration_s": r.duration_s} for r in results]
    if job.kind == "stdio":
        passed = sum(1 for r, want in zip(results, job.expected or [])
                     if r.ok and _norm_out(r.stdout) == _norm_out(want))
    else:
        outcome: dict[int, bool] = {}
        for line in results[0].stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == job.nonce and parts[1].isdigit():
                outcome[int(parts[1])] = parts[2] == "ok"
        passed = sum(outcome.values())
    return Verdict(passed / job.total, "ok", {"tests_passed": passed, "tests_total": job.total,
                                              "test_type": job.kind, "runs": runs[:10]})


def verify_code(rows: list[dict], sandbox: Sandbox, max_tests: int, timeout_s: float,
                batch_programs: int = 256, log=lambda msg: None) -> list[Verdict]:
    """rows: {"answer", "response", "test_cases"} -> one Verdict each; programs run in sandbox batches."""
    jobs = [plan(answer_part(r.get("answer"), r.get("response")), r.get("test_cases"), max_tests, timeout_s)
            for r in rows]
    flat = [(j, k) for j, job in enumerate(jobs) for k in range(len(job.programs))]
    results: dict[tuple[int, int], RunResult] = {}
    for start in range(0, len(flat), batch_programs):
        chunk = flat[start:start + batch_programs]
        try:
            outs = sandbox.run([jobs[j].programs[k] for j, k in chunk])
        except Exception as e:  # noqa: BLE001 - the sandbox failed: no verdict for these rows
            outs = [RunResult("sandbox_error", None, "", "", f"{type(e).__name__}: {e}"[:500], 0.0)] * len(chunk)
        results.update(zip(chunk, outs))
        log(f"code: {min(start + batch_programs, len(flat))}/{len(flat)} test programs run ({sandbox.name} sandbox)")
    return [score(job, [results[(j, k)] for k in range(len(job.programs))]) for j, job in enumerate(jobs)]
