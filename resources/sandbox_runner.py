"""Runs a batch of untrusted Python programs, each with its own limits; prints one JSON line per program.

    python3 sandbox_runner.py BATCH.json

Standard library only: the same file runs on the host (local backend, usually as root, dropping each
program to its own unprivileged uid inside fresh network and mount namespaces) and inside the Docker
sandbox container (already non-root, no network, read-only root). Programs run `parallel` at a time
from one single-threaded poll loop (no threads: preexec_fn after fork is only safe without them).
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
        if uid is not None:
            if limits.get("namespaces"):
                _isolate_namespaces(limits.get("private_dirs", ["/tmp", "/var/tmp", "/dev/shm"]), prog_dir)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        os.chdir(prog_dir)
    return setup


def _kill_uid(uid):
    """Kill every process still owned by a program's uid (children that left its process group)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            os.kill(int(pid), signal.SIGKILL)
                        break
        except (OSError, ValueError):
            pass


def _last_line(text):
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


class Job:
    def __init__(self, idx, prog, batch, slot):
        self.idx, self.slot = idx, slot
        limits = batch["limits"]
        self.timeout = float(prog.get("timeout_s") or limits["timeout_s"])
        self.limit_out = limits["output_bytes"]
        uid = batch["uid_base"] + slot if batch.get("uid_base") is not None else None
        self.uid = uid
        self.dir = os.path.join(batch["workdir"], f"p{idx}")
        self.out = os.path.join(batch["workdir"], f"o{idx}")
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs(self.out, exist_ok=True)
        with open(os.path.join(self.dir, "prog.py"), "w") as f:
            f.write(prog["code"])
        if uid is not None:
            os.chown(self.dir, uid, uid)
            os.chmod(self.dir, 0o700)
        stdin = prog.get("stdin") or ""
        with open(os.path.join(self.out, "stdin"), "w") as f:
            f.write(stdin)
        self.fin = open(os.path.join(self.out, "stdin"), "rb")
        self.chunks = {"stdout": [], "stderr": []}
        self.sizes = {"stdout": 0, "stderr": 0}
        self.output_cut = False
        limits = dict(limits, cpu_s=self.timeout)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": self.dir, "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            [batch["python"], "-I", "prog.py"], stdin=self.fin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, start_new_session=True, close_fds=True, preexec_fn=_preexec(self.dir, limits, uid))
        self.streams = {self.proc.stdout: "stdout", self.proc.stderr: "stderr"}
        for f in self.streams:
            os.set_blocking(f.fileno(), False)
        self.timed_out = False

    def pump(self, f):
        """Read what the program wrote (pipes, not files: a program cannot delete them). Past the
        output limit the program is killed. Returns "eof", "more" or "empty" (nothing to read now)."""
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

    def finish(self):
        duration = time.monotonic() - self.start
        self.kill()  # whatever it left behind in its group
        if self.uid is not None:
            _kill_uid(self.uid)
        for f in self.streams:
            while not f.closed and self.pump(f) == "more":  # drain what is left, never wait for more
                pass
            f.close()
        self.fin.close()
        stdout, stderr = self.text("stdout"), self.text("stderr")
        rc = self.proc.returncode
        if self.output_cut:
            reason = "output_limit"
        elif self.timed_out and "MemoryError" in _last_line(stderr):
            reason = "memory"  # hit the memory limit, then ran out of time dying
        elif self.timed_out:
            reason = "timeout"
        elif rc is not None and rc < 0:
            reason = _SIGNAL_REASONS.get(-rc, f"signal:{signal.Signals(-rc).name}")
        elif rc:
            last = _last_line(stderr)
            reason = ("memory" if "MemoryError" in last else "output_limit" if "File too large" in last else f"exit:{rc}")
        else:
            reason = "ok"
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.out, ignore_errors=True)
        return {"i": self.idx, "exit_code": rc, "timed_out": self.timed_out, "reason": reason,
                "error": _last_line(stderr) if reason != "ok" else "", "stdout": stdout, "stderr": stderr[-4000:],
                "duration_s": round(duration, 4)}


def run_batch(batch):
    programs = batch["programs"]
    parallel = max(1, int(batch.get("parallel", 1)))
    pending = list(range(len(programs)))
    running, free_slots = [], list(range(parallel))
    while pending or running:
        while pending and free_slots:
            idx, slot = pending.pop(0), free_slots.pop(0)
            try:
                running.append(Job(idx, programs[idx], batch, slot))
            except Exception as e:  # could not even start it: a sandbox failure, not a program verdict
                free_slots.append(slot)
                emit({"i": idx, "exit_code": None, "timed_out": False, "reason": "sandbox_error",
                      "error": f"{type(e).__name__}: {e}", "stdout": "", "stderr": "", "duration_s": 0.0})
        with selectors.DefaultSelector() as sel:
            for job in running:
                for f in job.streams:
                    if not f.closed:
                        sel.register(f, selectors.EVENT_READ, job)
            for key, _ in sel.select(timeout=0.005):
                if key.data.pump(key.fileobj) == "eof":
                    key.fileobj.close()
        now = time.monotonic()
        for job in list(running):
            if job.proc.poll() is None and now - job.start > job.timeout:
                job.timed_out = True
                job.kill()
            if job.proc.poll() is not None or job.timed_out:
                job.proc.wait()
                running.remove(job)
                free_slots.append(job.slot)
                emit(job.finish())


def emit(result):
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    with open(sys.argv[1]) as fh:
        run_batch(json.load(fh))
