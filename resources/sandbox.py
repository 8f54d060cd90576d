"""The code sandbox: run many untrusted programs with limits, report each one's outcome.

Two backends behind one interface (`Sandbox.run(programs) -> results`), both driving the same
stdlib-only runner script (resources/sandbox_runner.py):
- `docker`: one container per batch (docker SDK): no network, memory/pids/CPU limits, read-only root,
  tmpfs work dir, no-new-privileges, only the capabilities the runner needs to give each program slot
  its own uid (SETUID/SETGID, CHOWN, DAC_OVERRIDE, FOWNER, KILL). The runner runs inside it as root
  and starts each program with its own uid, timeout and rlimits; start-up is paid once per batch.
- `local`: the runner as a host subprocess. Each program gets rlimits (CPU, address space, processes,
  file size), a fresh work dir and, when we are root, its own unprivileged uid (a block of uids per
  runner, locked, + slot) in
  new network and mount namespaces (no network, private /tmp, read-only root where allowed); its
  leftover processes are killed by uid. Weaker than Docker: the host file system stays visible
  (world-readable files can be read) and the kernel is shared without seccomp. Not root: rlimits,
  process-group kill and a temp dir only.
A program that kills the runner itself is found by re-running the unreported programs one at a time.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import dagster as dg
from pydantic import PrivateAttr

RUNNER = Path(__file__).with_name("sandbox_runner.py")
BUILD_MEMORY_MB = 1024  # g++ on <bits/stdc++.h> needs more address space than a program


@dataclass(frozen=True)
class Program:
    """`code` runs as prog.py, or `files` with `argv` ({python}: the interpreter; {rfd}/{wfd}: the pipe
    to the driver), after `build` ({"argv", "timeout_s", "memory_mb"}), once per `runs` entry
    ({"stdin", "timeout_s"}); `driver` ({"files", "argv", "stdin"}) makes it a program/driver pair
    (see sandbox_runner.py)."""

    code: str = ""
    stdin: str = ""
    timeout_s: float | None = None  # None: the sandbox's default
    files: dict | None = None
    argv: list | None = None
    build: dict | None = None
    runs: list | None = None
    driver: dict | None = None

    def spec(self) -> dict:
        d = {"code": self.code, "stdin": self.stdin, "timeout_s": self.timeout_s}
        d.update({k: v for k, v in (("files", self.files), ("argv", self.argv), ("build", self.build),
                                     ("runs", self.runs), ("driver", self.driver)) if v})
        return d

    def budget(self, default_timeout: float) -> float:
        """An upper bound on its wall-clock time."""
        t = self.timeout_s or default_timeout
        runs = sum((r.get("timeout_s") or t) + 0.5 for r in self.runs) if self.runs else t + 0.5
        return runs + (float(self.build["timeout_s"]) if self.build else 0) + (2 if self.driver else 0)


@dataclass(frozen=True)
class RunResult:
    reason: str  # ok | exit:N | timeout | memory | output_limit | cpu_limit | killed | signal:X | sandbox_error
    exit_code: int | None
    stdout: str
    stderr: str
    error: str  # last stderr line (or the sandbox failure) when reason != ok
    duration_s: float
    extra: dict = field(default_factory=dict)  # "build", "runs", "driver": results of those steps

    @property
    def ok(self) -> bool:
        return self.reason == "ok"

    @classmethod
    def from_json(cls, d: dict) -> "RunResult":
        return cls(d["reason"], d["exit_code"], d["stdout"], d["stderr"], d["error"], d["duration_s"],
                   {k: d[k] for k in ("build", "runs", "driver") if k in d})


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 5.0
    memory_mb: int = 512
    nproc: int = 64
    fsize_mb: int = 16
    output_bytes: int = 1 << 20
    cpus: float = 2.0
    parallel: int = 2

    def runner_limits(self) -> dict:
        return {"timeout_s": self.timeout_s, "memory_mb": self.memory_mb, "nproc": self.nproc,
                "fsize_mb": self.fsize_mb, "output_bytes": self.output_bytes}


class Sandbox(Protocol):
    name: str

    def run(self, programs: list[Program]) -> list[RunResult]: ...


class _RunnerSandbox:
    """Shared batching and recovery; subclasses start the runner on one batch file."""

    name = "base"

    def __init__(self, limits: Limits):
        self.limits = limits

    def _exec_runner(self, batch_dir: Path, batch: dict) -> tuple[list[dict], int | None, str]:
        """Runs the runner on batch.json; returns (its JSON lines, its exit code, its stderr tail)."""
        raise NotImplementedError

    def _batch(self, programs: list[Program], parallel: int) -> dict:
        return {"programs": [p.spec() for p in programs],
                "budget_s": 60 + sum(p.budget(self.limits.timeout_s) + 1 for p in programs),
                "limits": self.limits.runner_limits(), "parallel": parallel}

    def _run_once(self, programs: list[Program], parallel: int) -> tuple[dict[int, RunResult], int | None, str]:
        with tempfile.TemporaryDirectory(prefix="am-sbx-batch-") as d:
            batch_dir = Path(d)
            os.chmod(batch_dir, 0o755)  # runner.py is read through it; batch.json itself is 0600
            shutil.copy(RUNNER, batch_dir / "runner.py")
            lines, rc, err = self._exec_runner(batch_dir, self._batch(programs, parallel))
        return {int(d["i"]): RunResult.from_json(d) for d in lines}, rc, err

    def run(self, programs: list[Program]) -> list[RunResult]:
        if not programs:
            return []
        results, rc, err = self._run_once(programs, self.limits.parallel)
        if not results and not _killed(rc):  # the runner could not run at all: the sandbox is broken
            failure = RunResult("sandbox_error", None, "", "", f"sandbox runner failed (exit {rc}): {err}", 0.0)
            return [failure] * len(programs)
        # the runner died mid-batch (a program killed it, or its container): one at a time finds the culprit
        for i in [i for i in range(len(programs)) if i not in results]:
            try:
                one, rc, err = self._run_once([programs[i]], 1)
                res = one.get(0) or (
                    RunResult("killed", None, "", "", "the program killed the sandbox runner", 0.0) if _killed(rc)
                    else RunResult("sandbox_error", None, "", "", f"sandbox runner failed (exit {rc}): {err}", 0.0))
            except Exception as e:  # noqa: BLE001 - recorded per program
                res = RunResult("sandbox_error", None, "", "", f"{type(e).__name__}: {e}", 0.0)
            results[i] = res
        return [results[i] for i in range(len(programs))]


def _write_private(path: Path, batch: dict) -> None:
    """batch.json holds every program's tests: readable by the runner (root) only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(batch, f)


def _killed(rc: int | None) -> bool:
    return rc is not None and (rc < 0 or rc >= 128)


def _parse_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut by the runner's death
    return out


def _others_can_run(path: str) -> bool:
    p = Path(os.path.realpath(path))
    if not p.is_file() or not p.stat().st_mode & 0o001:
        return False
    return all(a.stat().st_mode & 0o001 for a in p.parents)


def _world_executable_python() -> str:
    """An interpreter the unprivileged program uid can start (a venv under /root is not one)."""
    for cand in (sys.executable, shutil.which("python3") or "", "/usr/bin/python3"):
        if cand and _others_can_run(cand):
            return cand
    raise RuntimeError("no python3 that an unprivileged user may run; set the local sandbox's python")


class LocalSandbox(_RunnerSandbox):
    name = "local"

    def __init__(self, limits: Limits, uid_base: int = 61000, workdir: str | None = None,
                 python: str | None = None, namespaces: bool = True):
        super().__init__(limits)
        self.root = os.geteuid() == 0
        self.uid_base = uid_base if self.root else None
        self.namespaces = namespaces and self.root
        self.python = python or (_world_executable_python() if self.root else sys.executable)
        # outside /tmp, /var/tmp and /dev/shm: those become private tmpfs mounts in the program's namespace
        self.workdir = workdir or ("/var/lib/am-distill-sandbox" if self.root else tempfile.gettempdir())

    def _exec_runner(self, batch_dir: Path, batch: dict) -> tuple[list[dict], int | None, str]:
        import subprocess

        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        work = tempfile.mkdtemp(prefix="run-", dir=self.workdir)
        os.chmod(work, 0o711)  # programs may enter their own dir, not list the others
        lock, uid_base = self._uid_block()
        batch.update(workdir=work, python=self.python, uid_base=uid_base)
        batch["limits"]["namespaces"] = self.namespaces
        _write_private(batch_dir / "batch.json", batch)
        # a bound on the runner itself (each program already has its own timeout)
        budget = batch["budget_s"]
        try:
            # self.python: the forked test drivers import from its stdlib after dropping to their uid
            argv = [self.python, "-I", "-S", str(batch_dir / "runner.py"), str(batch_dir / "batch.json")]
            proc = subprocess.run(argv, capture_output=True, text=True, start_new_session=True, timeout=budget)
        except subprocess.TimeoutExpired as e:
            return [], None, f"sandbox runner exceeded {budget:.0f}s: {e}"
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if lock is not None:
                lock.close()
        return _parse_lines(proc.stdout), proc.returncode, proc.stderr.strip()[-500:]

    def _uid_block(self):
        """A block of 1000 uids no other runner on this host uses meanwhile (flock): runners kill
        leftover processes by uid, which must never hit another runner's programs."""
        if self.uid_base is None:
            return None, None
        import fcntl

        for k in range(64):
            start = self.uid_base + 1000 * k
            f = open(Path(self.workdir) / f"uids-{start}.lock", "w")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return f, start
            except BlockingIOError:
                f.close()
        f = open(Path(self.workdir) / f"uids-{self.uid_base}.lock", "w")
        fcntl.flock(f, fcntl.LOCK_EX)  # all taken: wait for the first
        return f, self.uid_base


class DockerSandbox(_RunnerSandbox):
    name = "docker"

    def __init__(self, limits: Limits, image: str):
        super().__init__(limits)
        self.image = image

    def _exec_runner(self, batch_dir: Path, batch: dict) -> tuple[list[dict], int | None, str]:
        from resources.sandbox_image import _client

        batch.update(workdir="/tmp/run", python="python3", uid_base=61000)
        batch["limits"]["namespaces"] = False
        _write_private(batch_dir / "batch.json", batch)
        os.chmod(batch_dir / "runner.py", 0o644)
        lim = self.limits
        mem = f"{max(lim.memory_mb, BUILD_MEMORY_MB) * max(1, lim.parallel) * 2 + 64}m"  # program + driver
        container = _client().containers.run(
            self.image, ["sleep", "infinity"], detach=True, init=True,  # init: orphans are reaped
            network_mode="none", read_only=True,
            user="0:0", cap_drop=["ALL"], cap_add=["SETUID", "SETGID", "CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL"],
            security_opt=["no-new-privileges"], mem_limit=mem, memswap_limit=mem,
            pids_limit=lim.nproc * max(1, lim.parallel) * 2 + 8, nano_cpus=int(lim.cpus * 1e9),
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={lim.fsize_mb * max(1, lim.parallel) * 4 + 16}m,mode=1777"},
            volumes={str(batch_dir): {"bind": "/batch", "mode": "ro"}}, working_dir="/tmp",
            environment={"LANG": "C.UTF-8"}, labels={"am-distill": "sandbox"})
        try:
            # streamed: the runner prints a line per finished program, so the HTTP read timeout only has to
            # cover one program, however long the whole batch takes
            api = container.client.api
            exec_id = api.exec_create(container.id, ["python3", "/batch/runner.py", "/batch/batch.json"])["Id"]
            out, errs = [], []
            for chunk_out, chunk_err in api.exec_start(exec_id, stream=True, demux=True):
                out.append(chunk_out or b"")
                errs.append(chunk_err or b"")
            rc = api.exec_inspect(exec_id).get("ExitCode")
            err = b"".join(errs).decode("utf-8", "replace").strip()[-500:]
            return _parse_lines(b"".join(out).decode("utf-8", "replace")), rc, f"{self.image}: {err}"
        finally:
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - already gone (a program stopped it)
                pass


def docker_available(image: str) -> tuple[bool, str]:
    """(True, "") when the daemon runs (started if needed) and the image exists (built if missing)."""
    from resources.sandbox_image import DockerUnavailable, ensure

    try:
        ensure(image)
        return True, ""
    except (DockerUnavailable, Exception) as e:  # noqa: BLE001 - the reason is reported
        return False, f"{type(e).__name__}: {e}"


class SandboxResource(dg.ConfigurableResource):
    """Where generated code runs (pipeline.yaml verification.sandbox / sandbox_image)."""

    backend: Literal["docker", "local"] = "docker"
    image: str = "am-distill-sandbox:bookworm"
    timeout_s: float = 5.0
    memory_mb: int = 512
    nproc: int = 64
    cpus: float = 2.0
    parallel: int = 2

    # the Docker check, once per step (an instance lives one step): (ok, why)
    _docker: tuple[bool, str] | None = PrivateAttr(default=None)

    def limits(self) -> Limits:
        return Limits(timeout_s=self.timeout_s, memory_mb=self.memory_mb, nproc=self.nproc, cpus=self.cpus,
                      parallel=self.parallel)

    def get(self) -> Sandbox:
        if self.backend == "local":
            return LocalSandbox(self.limits())
        if self._docker is None:
            self._docker = docker_available(self.image)
        ok, why = self._docker
        if not ok:
            raise RuntimeError(f"docker sandbox unavailable ({why}); set verification.sandbox: local "
                               f"or run `python -m resources.sandbox_image --ensure`")
        return DockerSandbox(self.limits(), self.image)
