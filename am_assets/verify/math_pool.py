"""A pool of Math-Verify worker processes with our own per-item timeout.

Math-Verify's timeouts use SIGALRM, which fails in threads (Dagster, async callers). Workers run with
those disabled; the dispatcher here tracks each worker's current item and, past `timeout_s`, kills the
worker (a hung sympy call cannot be interrupted any other way), records that item as `timeout`,
re-queues the worker's other in-flight items and starts a replacement. The batch goes on.
"""

from __future__ import annotations

import collections
import json
import os
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path

WORKER = Path(__file__).with_name("math_worker.py")
WINDOW_BYTES = 32 * 1024  # unread bytes per worker pipe stay under the 64 KiB pipe buffer: writes never block
MAX_INFLIGHT = 16


class _Worker:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-I", str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, bufsize=0)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.ready = False
        self.inflight: collections.deque[tuple[int, int]] = collections.deque()  # (item index, bytes)
        self.since = time.monotonic()  # when the head of `inflight` started

    @property
    def pending_bytes(self) -> int:
        return sum(b for _, b in self.inflight)

    def send(self, idx: int, payload: bytes) -> None:
        if not self.inflight:
            self.since = time.monotonic()
        self.inflight.append((idx, len(payload)))
        self.proc.stdin.write(payload)

    def read_lines(self) -> list[dict] | None:
        """Complete lines now available; None at EOF (the worker died)."""
        try:
            chunk = self.proc.stdout.read(1 << 16)
        except BlockingIOError:
            return []
        if not chunk:
            return None
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        return [json.loads(ln) for ln in lines if ln.strip()]

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 - already gone
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:  # noqa: BLE001
                pass


class MathPool:
    def __init__(self, workers: int = 2, timeout_s: float = 5.0):
        self.n = max(1, workers)
        self.timeout_s = timeout_s
        self.workers: list[_Worker] = []
        self.restarts = 0
        self._lock = threading.Lock()  # one batch at a time per pool (callers may be threads)

    def close(self) -> None:
        for w in self.workers:
            w.kill()
        self.workers = []

    def _ensure_workers(self) -> None:
        self.workers = [w for w in self.workers if w.proc.poll() is None]
        while len(self.workers) < self.n:
            self.workers.append(_Worker())

    def verify(self, items: list[tuple]) -> list[dict]:
        """[(reference, answer part[, fallback])] -> [{"score", "status", "details"}] in the same order.
        fallback (math_worker.FALLBACKS, default answer_statement): what an answer part without a
        \\boxed{} gives."""
        with self._lock:
            return self._verify(items)

    def _verify(self, items: list[tuple]) -> list[dict]:
        results: list[dict | None] = [None] * len(items)
        queue = collections.deque(range(len(items)))
        payloads = {}
        self._ensure_workers()
        sel = selectors.DefaultSelector()
        for w in self.workers:
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        done = 0
        try:
            while done < len(items):
                for w in self.workers:  # fill each ready worker's window
                    while w.ready and queue and len(w.inflight) < MAX_INFLIGHT:
                        i = queue[0]
                        if i not in payloads:
                            gold, pred, *fallback = items[i]
                            payloads[i] = (json.dumps({"i": i, "gold": gold, "pred": pred,
                                                       "fallback": fallback[0] if fallback else "answer_statement"})
                                           + "\n").encode()
                        if w.inflight and w.pending_bytes + len(payloads[i]) > WINDOW_BYTES:
                            break
                        queue.popleft()
                        w.send(i, payloads[i])
                now = time.monotonic()
                waits = [w.since + self.timeout_s - now for w in self.workers if w.inflight]
                events = sel.select(timeout=max(0.0, min(waits)) if waits else 1.0)
                for key, _ in events:
                    w: _Worker = key.data
                    lines = w.read_lines()
                    if lines is None:  # died: its in-flight items are verifier errors, not verdicts
                        done += self._fail_worker(w, sel, results, queue, "verifier_error", "math worker died")
                        continue
                    for msg in lines:
                        if "ready" in msg:
                            w.ready = True
                            continue
                        if w.inflight and w.inflight[0][0] == msg["i"]:
                            w.inflight.popleft()
                        idx = msg.pop("i")
                        if results[idx] is None:
                            results[idx] = msg
                            done += 1
                        w.since = time.monotonic()
                now = time.monotonic()
                for w in list(self.workers):
                    if w.inflight and now - w.since > self.timeout_s:
                        done += self._fail_worker(w, sel, results, queue, "timeout",
                                                  f"Math-Verify took longer than {self.timeout_s:g}s")
        finally:
            sel.close()
        return results  # type: ignore[return-value]

    def _fail_worker(self, w: _Worker, sel, results, queue, status: str, why: str) -> int:
        """Kill `w`; its current item gets `status`, its other in-flight items go back to the queue."""
        sel.unregister(w.proc.stdout)
        w.kill()
        if not w.ready:
            raise RuntimeError(f"the Math-Verify worker ({WORKER}) exited during start-up: is math-verify installed?")
        self.workers.remove(w)
        self.restarts += 1
        marked = 0
        if w.inflight:
            head = w.inflight.popleft()[0]
            if results[head] is None:
                results[head] = {"score": 0.0, "status": status, "details": {"error": why}}
                marked = 1
            for idx, _ in reversed(w.inflight):
                queue.appendleft(idx)
        new = _Worker()
        self.workers.append(new)
        sel.register(new.proc.stdout, selectors.EVENT_READ, new)
        return marked
