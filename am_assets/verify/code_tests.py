"""Code verifier: the last fenced code block of the answer, run against the query's first N tests in
the sandbox; score = passed / total (or 1 only when all pass: `verification.code_score`).

`test_cases` layouts (am_assets/core/schema.py): check (HumanEval `check(candidate)`: one test), asserts
(MBPP: each assert is a test), functional (each case is a call compared with the expected value),
test_code (AM 1.4M: one test), stdio (each case is its own run with that stdin), unknown (ingest could
not tell stdin from functional: a verifier_error with its reason).

The program under test cannot judge itself. Python tests other than stdio run as a pair of processes
(am_assets/verify/code_proto.py): the solution alone in a server process, the dataset's test code in a
driver process under another uid, calling the solution through proxies that return plain data only;
pass/fail comes from the driver's own output channel, never from anything the solution prints.
stdin/stdout tests (Python, and C++ compiled once per response) are compared here, on the host.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from am_assets.core.progress import ProgressLog
from am_assets.verify.base import Verdict, Verifier, answer_part, last_code_block, no_reference
from am_assets.verify.code_proto import needs_prelude
from resources.sandbox import BUILD_MEMORY_MB, Program, RunResult, Sandbox

NAME = "code-sandbox"
VERSION = "code-sandbox/2"
PY_LANGS = (None, "python", "py", "python3")
CPP_LANGS = ("cpp", "c++", "cc", "cxx")
SCORE_MODES = ("fraction", "all_or_nothing")
PROTO = Path(__file__).with_name("code_proto.py").read_text()
CPP_BUILD = ["g++", "-std=gnu++17", "-O2", "-pipe", "-o", "main", "main.cpp"]
CPP_BUILD_TIMEOUT_S = 30.0


@dataclass
class CodeJob:
    """The program of one response and how to read its result back."""

    program: Program | None
    total: int
    kind: str
    lang: str = "python"
    expected: list[str] | None = None  # stdio: expected stdout per run
    verdict: Verdict | None = None  # decided without running anything


def _error(msg: str, kind: str = "") -> CodeJob:
    return CodeJob(None, 0, kind, verdict=Verdict(0.0, "verifier_error", {"error": msg}))


def starter_fn_name(starter: str | None) -> str | None:
    """The method of LeetCode starter code (`class Solution: def twoSum(self, ...)`), else its function."""
    names = [n for n in re.findall(r"^\s*def\s+(\w+)\s*\(\s*self\b", starter or "", re.M) if not n.startswith("__")]
    names = names or re.findall(r"^def\s+(\w+)\s*\(", starter or "", re.M)
    return names[0] if names else None


def _text(v) -> str:
    return "\n".join(map(str, v)) if isinstance(v, list) else str(v if v is not None else "")


def _flag(code: str) -> str:
    return "1" if needs_prelude(code) else "0"


def _stdio(code: str, lang: str, cases: list, timeout_s: float) -> CodeJob:
    runs = [{"stdin": _text(c.get("input")), "timeout_s": timeout_s} for c in cases]
    expected = [_text(c.get("output")) for c in cases]
    if lang == "cpp":
        prog = Program(files={"main.cpp": code}, argv=["./main"], runs=runs, timeout_s=timeout_s,
                       build={"argv": CPP_BUILD, "timeout_s": CPP_BUILD_TIMEOUT_S, "memory_mb": BUILD_MEMORY_MB})
    else:
        prog = Program(files={"code_proto.py": PROTO, "solution.py": code}, timeout_s=timeout_s, runs=runs,
                       argv=["{python}", "-I", "-S", "code_proto.py", "run", "solution.py", _flag(code)])
    return CodeJob(prog, len(cases), "stdio", lang, expected=expected)


def _pair(code: str, kind: str, spec: dict, n: int, timeout_s: float) -> CodeJob:
    spec = dict(spec, kind=kind, call_timeout_s=timeout_s, setup_timeout_s=timeout_s)
    prog = Program(files={"code_proto.py": PROTO, "solution.py": code}, timeout_s=timeout_s * (n + 1),
                   argv=["{python}", "-I", "-S", "code_proto.py", "server", "solution.py", "{rfd}", "{wfd}",
                         _flag(code)],
                   driver={"files": {"code_proto.py": PROTO}, "stdin": json.dumps(spec),
                           "fork": "code_proto.py:driver"})  # trusted: forked from the runner, no start-up
    return CodeJob(prog, n, kind)


def plan(answer: str, tests_json: str | None, max_tests: int, timeout_s: float) -> CodeJob:
    if not tests_json:
        return CodeJob(None, 0, "", verdict=no_reference("test_cases"))
    try:
        tests = json.loads(tests_json)
        kind = tests["type"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        return _error(f"test_cases is not valid: {e}")
    if kind == "unknown":
        return _error(f"the test type cannot be determined: {tests.get('reason', 'no reason given')}", kind)
    code, lang = last_code_block(answer)
    if code is None:
        return CodeJob(None, 0, kind, verdict=Verdict(0.0, "ok", {"reason": "no fenced code block in the answer"}))
    if lang is None and re.search(r"^\s*#include\s*<", code, re.M):
        lang = "cpp"  # an unlabelled C++ block
    if lang in CPP_LANGS and kind == "stdio":
        lang = "cpp"
    elif lang in CPP_LANGS:
        return _error(f"C++ is run against stdin/stdout tests only, not {kind!r} tests", kind)
    elif lang not in PY_LANGS:
        return _error(f"language {lang!r} is not run", kind)
    else:
        lang = "python"
    try:
        return _plan_tests(code, lang, kind, tests, max_tests, timeout_s)
    except (KeyError, TypeError, AttributeError) as e:
        return _error(f"test_cases is not a valid {kind!r} layout: {type(e).__name__}: {e}", kind)


def _plan_tests(code: str, lang: str, kind: str, tests: dict, max_tests: int, timeout_s: float) -> CodeJob:
    cases = list(tests.get("cases") or [])
    if kind == "stdio":
        cases = cases[:max_tests]
        if not cases:
            return CodeJob(None, 0, kind, verdict=no_reference("test cases"))
        return _stdio(code, lang, cases, timeout_s)
    if kind == "functional":
        fn = tests.get("fn_name") or starter_fn_name(tests.get("starter_code"))
        if not fn:
            return _error("functional tests without a function name (fn_name or starter code)", kind)
        cases = cases[:max_tests]
        spec = {"fn_name": fn, "tests": cases, "output_wrapped": bool(tests.get("output_wrapped"))}
    elif kind in ("check", "test_code"):
        spec = {"tests": [tests["test"]], "entry_point": tests.get("entry_point"), "prompt": tests.get("prompt")}
    elif kind == "asserts":
        spec = {"tests": list(tests.get("asserts") or [])[:max_tests], "setup": tests.get("setup") or ""}
    else:
        return _error(f"unknown test_cases type {kind!r}", kind)
    if not spec["tests"]:
        return CodeJob(None, 0, kind, verdict=no_reference("test cases"))
    return _pair(code, kind, spec, len(spec["tests"]), timeout_s)


def _tokens_equal(got: str, want: str) -> bool:
    """One whitespace-separated token: equal text, equal numbers (1 == 1.0), or, where the expected
    value has a fractional part, within 1e-6 (absolute, or relative for large values)."""
    if got == want:
        return True
    try:
        g, w = Decimal(got), Decimal(want)
    except (InvalidOperation, ValueError):
        return False
    if not (g.is_finite() and w.is_finite()):
        return False
    if g == w:
        return True
    return bool(re.search(r"[.eE]", want)) and abs(g - w) <= Decimal("1e-6") * max(Decimal(1), abs(w))


def same_output(got: str, want: str) -> bool:
    """Whitespace-tolerant (the contest checkers' token comparison), floats within tolerance."""
    g, w = got.split(), want.split()
    return len(g) == len(w) and all(map(_tokens_equal, g, w))


def _why(r: dict | RunResult) -> str:
    reason, error = (r["reason"], r["error"]) if isinstance(r, dict) else (r.reason, r.error)
    return f"{reason}: {error}"[:300] if error else reason


def _stdio_results(job: CodeJob, r: RunResult) -> tuple[list[dict], dict]:
    info: dict = {}
    build = r.extra.get("build")
    if build is not None:
        info["compile"] = {"reason": build["reason"], "duration_s": build["duration_s"]}
        if build["reason"] != "ok":  # a compile error is the response's fault: a verdict of 0
            msg = (build["stderr"] or build["error"])[-1500:]
            return [{"ok": False, "why": "compile error"}] * job.total, dict(info, compile_error=msg)
    runs = r.extra.get("runs") or [{"reason": r.reason, "error": r.error, "stdout": r.stdout}]
    tests = []
    for run, want in zip(runs, job.expected or []):
        if run["reason"] != "ok":
            tests.append({"ok": False, "why": _why(run)})
        elif same_output(run["stdout"], want):
            tests.append({"ok": True, "why": ""})
        else:
            tests.append({"ok": False, "why": f"wrong answer: got {run['stdout'][:80]!r}, expected {want[:80]!r}"})
    return tests, info


def _pair_results(job: CodeJob, r: RunResult) -> tuple[list[dict] | None, dict]:
    """Only the driver's report counts. Lines that are not well-formed reports of a known test, once
    each, are harness violations: recorded, never counted."""
    drv = r.extra.get("driver") or {"reason": "sandbox_error", "error": "no driver result", "stdout": ""}
    found: dict[int, dict] = {}
    violations, done = [], False
    for line in drv["stdout"].splitlines():
        try:
            rep = json.loads(line)
        except ValueError:
            rep = None
        if isinstance(rep, dict) and rep.get("done") is True:
            done = True
        elif (isinstance(rep, dict) and type(rep.get("t")) is int and 0 <= rep["t"] < job.total
              and rep["t"] not in found and type(rep.get("ok")) is bool):
            found[rep["t"]] = {"ok": rep["ok"], "why": str(rep.get("why", ""))[:300]}
        else:
            violations.append(line[:200])
    info = {"solution": _why(r), "driver": _why(drv)}
    if violations:
        info["violations"] = violations[:10]
    if not done and r.ok and drv["reason"] != "ok":  # our side failed, not the solution
        return None, dict(info, error=f"the test driver failed: {_why(drv)}")
    for t in found.values():
        if "process ended" in t["why"] and not r.ok:
            t["why"] = f"{t['why']} ({_why(r)})"[:300]
    gone = {"ok": False, "why": f"not reported: the solution process ended ({_why(r)})"[:300]}
    tests = [found.get(i, gone) for i in range(job.total)]
    return tests, info


def score(job: CodeJob, result: RunResult | None, mode: str = "fraction") -> Verdict:
    if job.verdict is not None:
        return job.verdict
    assert result is not None
    if result.reason == "sandbox_error":  # the sandbox failed, not the program: no verdict
        return Verdict(0.0, "verifier_error", {"error": result.error, "tests_total": job.total})
    tests, info = (_stdio_results if job.kind == "stdio" else _pair_results)(job, result)
    if tests is None:
        return Verdict(0.0, "verifier_error", dict(info, tests_total=job.total))
    passed = sum(1 for t in tests if t["ok"] is True)
    value = passed / job.total if mode == "fraction" else float(passed == job.total)
    return Verdict(min(1.0, max(0.0, value)), "ok", dict(
        info, tests_passed=passed, tests_total=job.total, test_type=job.kind, language=job.lang,
        score_mode=mode, tests=tests[:10], duration_s=result.duration_s))


def verify_code(rows: list[dict], sandbox: Sandbox, max_tests: int, timeout_s: float,
                batch_programs: int = 256, log=lambda msg: None, score_mode: str = "fraction") -> list[Verdict]:
    """rows: {"answer", "response", "test_cases"} -> one Verdict each; programs run in sandbox batches."""
    if score_mode not in SCORE_MODES:
        raise ValueError(f"code score mode {score_mode!r} is not one of {SCORE_MODES}")
    jobs = [plan(answer_part(r.get("answer"), r.get("response")), r.get("test_cases"), max_tests, timeout_s)
            for r in rows]
    todo = [j for j, job in enumerate(jobs) if job.program is not None]
    results: dict[int, RunResult] = {}
    progress = ProgressLog(log)
    for start in range(0, len(todo), batch_programs):
        chunk = todo[start:start + batch_programs]
        try:
            outs = sandbox.run([jobs[j].program for j in chunk])  # type: ignore[misc]
        except Exception as e:  # noqa: BLE001 - the sandbox failed: no verdict for these rows
            outs = [RunResult("sandbox_error", None, "", "", f"{type(e).__name__}: {e}"[:500], 0.0)] * len(chunk)
        results.update(zip(chunk, outs))
        done = min(start + batch_programs, len(todo))
        progress(f"code: {done}/{len(todo)} test programs run ({sandbox.name} sandbox)", final=done == len(todo))
    return [score(job, results.get(j), score_mode) for j, job in enumerate(jobs)]


def _verify_rows(rows: list[dict], ctx) -> list[Verdict]:
    try:
        sandbox = ctx.sandbox_factory()
    except Exception as e:  # noqa: BLE001 - no sandbox: no verdicts, said per row
        return [Verdict(0.0, "verifier_error", {"error": f"sandbox: {e}"[:500]})] * len(rows)
    items = [{"answer": r["_answer"], "response": None, "test_cases": r.get("test_cases")} for r in rows]
    v = ctx.vcfg
    return verify_code(items, sandbox, v.code_max_tests, v.code_timeout_s, log=ctx.log, score_mode=v.code_score_mode)


VERIFIER = Verifier(
    key="code", name=NAME, applies=lambda row: row.get("category") == "code", verify=_verify_rows,
    version=lambda ctx: f"{VERSION}/tests{ctx.vcfg.code_max_tests}"
                        + ("/all" if ctx.vcfg.code_score_mode == "all_or_nothing" else ""))
