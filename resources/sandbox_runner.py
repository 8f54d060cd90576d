"""Runs a batch of untrusted programs, each with its own limits; prints one JSON line per program.

    python3 sandbox_runner.py BATCH.json

Standard library only: the same file runs on the host (local backend, as root: each program drops to
its own unprivileged uid inside fresh network and mount namespaces) and inside the Docker sandbox
container (as root without most capabilities; programs get their own uids there too). Programs run
`parallel` at a time from one single-threaded poll loop (no threads: preexec_fn after fork is only
safe without them).

A program is `files` (or `code`, written as prog.py) run with `argv` ({python} is the interpreter),
optionally after a `build` step (a compiler; when it fails the runs are skipped), once per entry of
`runs` (each its own stdin and timeout; default: one run with `stdin`). With `driver` it is a pair
instead: the program (untrusted) and the driver (trusted) run at once under two different uids,
joined by two pipes whose fds replace {rfd}/{wfd} in each argv; the driver's stdout is the report.
The driver's uid is not the program's, so the program cannot signal, trace or read it. A driver with
`fork` ("file.py:function") runs as a fork of this runner calling that function with the two fds.
"""

import ctypes
import json
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import time

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
_SIGNAL_REASONS = {signal.SIGXFSZ: "output_limit", signal.SIGXCPU: "cpu_limit", signal.SIGKILL: "killed"}
DRIVER_UID_OFFSET = 500  # driver of slot s: uid_base + 500 + s; program: uid_base + s


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    return libc


def _isolate_namespaces(private_dirs, prog_dir):
    """New network namespace (only a downed loopback) and mount namespace with private tmp dirs and,
    where the kernel allows, a read-only root. Called in the child between fork and exec, as root."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNET | CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET|CLONE_NEWNS) failed")
    libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    for d in private_dirs:  # world-writable places: writes land in a throwaway tmpfs
        if os.path.isdir(d):
            libc.mount(b"tmpfs", d.encode(), b"tmpfs", 0, b"size=16m,mode=1777")
    # the work dir becomes its own (writable) mount, then the root is remounted read-only: best effort
    libc.mount(prog_dir.encode(), prog_dir.encode(), None, MS_BIND, None)
    libc.mount(b"none", b"/", None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)


def _preexec(prog_dir, limits, uid):
    def setup():
        mem = limits["memory_mb"] * 1024 * 1024
        cpu = int(limits["cpu_s"]) + 1
        fsize = limits["fsize_mb"] * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
        # deep recursion needs a deep main stack; unlimited (bounded by RLIMIT_AS) rather than a size,
        # because glibc gives every new thread a stack of the soft limit's size
        resource.setrlimit(resource.RLIMIT_STACK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        if uid is not None:
            if limits.get("namespaces"):
                _isolate_namespaces(limits.get("private_dirs", ["/tmp", "/var/tmp", "/dev/shm"]), prog_dir)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        os.chdir(prog_dir)
    return setup


def _kill_uid(uid):
    """Kill every process still owned by a uid (children that left the process group); repeated
    because a forking process can add one between the scan and the kill."""
    for _ in range(5):
        found = False
        for pid in os.listdir("/proc"):
            try:  # /proc/PID belongs to the process's uid: one stat, and the state only for those
                if pid.isdigit() and os.stat(f"/proc/{pid}").st_uid == uid:
                    with open(f"/proc/{pid}/stat", "rb") as f:
                        if f.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                            continue  # dead already, waiting to be reaped
                    os.kill(int(pid), signal.SIGKILL)
                    found = True
            except (OSError, IndexError):
                pass
        if not found:
            return
        time.sleep(0.005)


def _last_line(text):
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _make_dir(path, files, uid):
    os.makedirs(path, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(path, os.path.basename(name)), "w") as f:
            f.write(text)
    if uid is not None:
        for name in [*os.listdir(path), "."]:
            os.chown(os.path.join(path, name), uid, uid)
        os.chmod(path, 0o700)  # no other program (uid) may read it


class _Forked:
    """A trusted function (the test driver) run in a fork of this runner, which saves an interpreter
    start-up per program; the subset of Popen that Proc uses. Never used for untrusted code: a fork
    carries the runner's memory, which holds the whole batch."""

    def __init__(self, fn, stdin_fd, pass_fds, setup):
        out, err = os.pipe(), os.pipe()
        self.returncode = None
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                os.setsid()
                keep = [os.dup(fd) for fd in pass_fds]
                for k, fd in enumerate(keep):  # the pipe ends at 200, 201; every other inherited fd closed
                    os.dup2(fd, 200 + k)
                for k, fd in enumerate((stdin_fd, out[1], err[1])):
                    os.dup2(fd, k)
                os.closerange(3, 200)
                os.closerange(200 + len(keep), 1 << 16)
                signal.signal(signal.SIGPIPE, signal.SIG_IGN)
                setup()
                sys.stdin, sys.stdout, sys.stderr = (open(k, m, closefd=False) for k, m in enumerate("rww"))
                fn(*range(200, 200 + len(keep)))
                sys.stdout.flush()
                code = 0
            except BaseException as e:  # noqa: BLE001 - reported like a crashed process
                os.write(2, f"{type(e).__name__}: {e}\n".encode())
            finally:
                os._exit(code)
        os.close(out[1])
        os.close(err[1])
        self.stdout, self.stderr = os.fdopen(out[0], "rb", buffering=0), os.fdopen(err[0], "rb", buffering=0)

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self):
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode


_TARGETS = {}


def _target(files, spec):
    """`file.py:function` from the driver's files, loaded into this runner once per distinct text."""
    name, fn = spec.split(":")
    text = files[name]
    if text not in _TARGETS:
        mod = {"__name__": "sandbox_driver"}
        exec(compile(text, name, "exec"), mod)
        if "warm" in mod:  # imports done once here are shared by every fork
            mod["warm"]()
        _TARGETS[text] = mod
    return _TARGETS[text][fn]


class Proc:
    """One process with its own uid, rlimits, dir and wall-clock limit; output read through pipes
    (not files: a program cannot delete them), killed past the output limit."""

    def __init__(self, batch, argv, cwd, stdin, timeout, uid, memory_mb=None, pass_fds=(), target=None):
        limits = dict(batch["limits"], cpu_s=timeout)
        if memory_mb:
            limits["memory_mb"] = memory_mb
        self.timeout, self.uid, self.limit_out = timeout, uid, limits["output_bytes"]
        self.stdin_path = cwd.rstrip("/") + ".stdin"
        with os.fdopen(os.open(self.stdin_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(stdin or "")  # 0600: a driver's stdin holds the expected answers
        self.chunks, self.sizes = {"stdout": [], "stderr": []}, {"stdout": 0, "stderr": 0}
        self.output_cut = self.timed_out = self.ended = False
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": cwd, "TMPDIR": cwd, "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        self.start = time.monotonic()
        with open(self.stdin_path, "rb") as fin:
            if target is not None:
                self.proc = _Forked(target, fin.fileno(), pass_fds, _preexec(cwd, limits, uid))
            else:
                self.proc = subprocess.Popen(
                    [batch["python"] if a == "{python}" else a for a in argv], stdin=fin, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, env=env, start_new_session=True, close_fds=True, pass_fds=pass_fds,
                    preexec_fn=_preexec(cwd, limits, uid))
        self.streams = {self.proc.stdout: "stdout", self.proc.stderr: "stderr"}
        for f in self.streams:
            os.set_blocking(f.fileno(), False)

    def pump(self, f):
        """Read what is there; returns "eof", "more" or "empty"."""
        name = self.streams[f]
        try:
            data = f.read(65536)
        except BlockingIOError:
            return "empty"
        if data is None:
            return "empty"
        if not data:
            return "eof"
        if self.sizes[name] <= self.limit_out:
            self.chunks[name].append(data)
        self.sizes[name] += len(data)
        if self.sizes[name] > self.limit_out and not self.output_cut:
            self.output_cut = True
            self.kill()
        return "more"

    def text(self, name):
        return b"".join(self.chunks[name])[:self.limit_out].decode("utf-8", "replace")

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def check(self, now):
        """True once the process has ended (killed here past its wall-clock limit)."""
        if self.proc.poll() is None and now - self.start > self.timeout:
            self.timed_out = True
            self.kill()
        return self.proc.poll() is not None

    def finish(self, ended_by_runner=False):
        duration = time.monotonic() - self.start
        self.kill()  # whatever it left behind in its group
        self.proc.wait()  # reaped first: a zombie would look like a survivor below
        if self.uid is not None and not isinstance(self.proc, _Forked):  # a forked driver is trusted code
            _kill_uid(self.uid)
        for f in self.streams:
            while not f.closed and self.pump(f) == "more":  # drain what is left, never wait for more
                pass
            f.close()
        os.unlink(self.stdin_path)
        stdout, stderr, rc = self.text("stdout"), self.text("stderr"), self.proc.returncode
        if self.output_cut:
            reason = "output_limit"
        elif self.timed_out and "MemoryError" in _last_line(stderr):
            reason = "memory"  # hit the memory limit, then ran out of time dying
        elif self.timed_out:
            reason = "timeout"
        elif ended_by_runner:
            reason = "ok"  # still serving when its driver was done
        elif rc is not None and rc < 0:
            reason = _SIGNAL_REASONS.get(-rc, f"signal:{signal.Signals(-rc).name}")
        elif rc:
            last = _last_line(stderr)
            reason = ("memory" if "MemoryError" in last or "bad_alloc" in last else
                      "output_limit" if "File too large" in last else f"exit:{rc}")
        else:
            reason = "ok"
        return {"exit_code": rc, "timed_out": self.timed_out, "reason": reason,
                "error": _last_line(stderr) if reason != "ok" else "", "stdout": stdout, "stderr": stderr[-4000:],
                "duration_s": round(duration, 4)}


class Job:
    """One program of the batch: [build] + runs, or a program/driver pair."""

    def __init__(self, idx, prog, batch, slot):
        self.idx, self.prog, self.batch = idx, prog, batch
        base = batch.get("uid_base")
        self.uid = base + slot if base is not None else None
        self.driver_uid = base + DRIVER_UID_OFFSET + slot if base is not None else None
        self.dir = os.path.join(batch["workdir"], f"p{idx}")
        files = prog.get("files") or {"prog.py": prog.get("code", "")}
        _make_dir(self.dir, files, self.uid)
        self.default_timeout = float(prog.get("timeout_s") or batch["limits"]["timeout_s"])
        self.argv = prog.get("argv") or ["{python}", "-I", "prog.py"]
        self.runs = prog.get("runs") or [{"stdin": prog.get("stdin", "")}]
        self.results, self.build, self.driver_result = [], None, None
        self.procs = []
        if prog.get("driver"):
            self._start_pair(prog["driver"])
        elif prog.get("build"):
            b = prog["build"]
            self.procs = [Proc(batch, b["argv"], self.dir, "", float(b["timeout_s"]), self.uid, b.get("memory_mb"))]
            self.stage = "build"
        else:
            self._next_run()

    def _start_pair(self, drv):
        d_dir = os.path.join(self.batch["workdir"], f"d{self.idx}")
        _make_dir(d_dir, {} if drv.get("fork") else drv.get("files", {}), self.driver_uid)
        to_prog, to_drv = os.pipe(), os.pipe()  # (read, write) each
        sub = {"{rfd}": str(to_prog[0]), "{wfd}": str(to_drv[1])}
        try:
            self.procs = [Proc(self.batch, [sub.get(a, a) for a in self.argv], self.dir, self.prog.get("stdin", ""),
                               self.default_timeout, self.uid, pass_fds=(to_prog[0], to_drv[1]))]
            sub = {"{rfd}": str(to_drv[0]), "{wfd}": str(to_prog[1])}
            target = _target(drv["files"], drv["fork"]) if drv.get("fork") else None
            self.procs.append(Proc(self.batch, [sub.get(a, a) for a in drv.get("argv", [])], d_dir,
                                   drv.get("stdin", ""), self.default_timeout + 1, self.driver_uid,
                                   pass_fds=(to_drv[0], to_prog[1]), target=target))
        finally:
            for fd in (*to_prog, *to_drv):
                os.close(fd)
        self.d_dir, self.stage = d_dir, "pair"

    def _next_run(self):
        run = self.runs[len(self.results)]
        self.procs = [Proc(self.batch, self.argv, self.dir, run.get("stdin", ""),
                           float(run.get("timeout_s") or self.default_timeout), self.uid)]
        self.stage = "run"

    def tick(self, now):
        """Advance; True when the whole program is done."""
        if self.stage == "pair":
            prog, drv = self.procs
            if drv.check(now) or (prog.check(now) and prog.timed_out):
                self.driver_result = drv.finish()
                self.results.append(prog.finish(ended_by_runner=prog.proc.poll() is None))
                return True
            return False
        if not self.procs[0].check(now):
            return False
        res = self.procs[0].finish()
        if self.stage == "build":
            self.build = res
            if res["reason"] != "ok":
                return True
        else:
            self.results.append(res)
            if len(self.results) == len(self.runs):
                return True
        self._next_run()
        return False

    def result(self):
        for d in (self.dir, getattr(self, "d_dir", None)):
            if d:
                shutil.rmtree(d, ignore_errors=True)
        main = self.results[-1] if self.results else dict(self.build)
        out = dict(main, i=self.idx)
        if self.build is not None:
            out["build"] = self.build
        if len(self.runs) > 1 or self.build is not None:
            out["runs"] = self.results
        if self.driver_result is not None:
            out["driver"] = self.driver_result
        return out


def run_batch(batch):
    programs = batch["programs"]
    parallel = max(1, int(batch.get("parallel", 1)))
    pending = list(range(len(programs)))
    running, free_slots = [], list(range(parallel))
    while pending or running:
        while pending and free_slots:
            idx, slot = pending.pop(0), free_slots.pop(0)
            try:
                running.append((Job(idx, programs[idx], batch, slot), slot))
            except Exception as e:  # could not even start it: a sandbox failure, not a program verdict
                free_slots.append(slot)
                emit({"i": idx, "exit_code": None, "timed_out": False, "reason": "sandbox_error",
                      "error": f"{type(e).__name__}: {e}", "stdout": "", "stderr": "", "duration_s": 0.0})
        with selectors.DefaultSelector() as sel:
            for job, _ in running:
                for proc in job.procs:
                    for f in proc.streams:
                        if not f.closed:
                            sel.register(f, selectors.EVENT_READ, proc)
            for key, _ in sel.select(timeout=0.005):
                if key.data.pump(key.fileobj) == "eof":
                    key.fileobj.close()
        now = time.monotonic()
        for job, slot in list(running):
            try:
                done, out = job.tick(now), None
            except Exception as e:  # a later step could not start: a sandbox failure
                for proc in job.procs:
                    proc.kill()
                done, out = True, {"i": job.idx, "exit_code": None, "timed_out": False, "reason": "sandbox_error",
                                   "error": f"{type(e).__name__}: {e}", "stdout": "", "stderr": "", "duration_s": 0.0}
            if done:
                running.remove((job, slot))
                free_slots.append(slot)
                emit(out or job.result())


def emit(result):
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    with open(sys.argv[1]) as fh:
        run_batch(json.load(fh))
