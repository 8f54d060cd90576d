"""Small helpers shared by the benchmarks: peak memory of a child process, a printed figure."""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import resource
import time
from typing import Any, Callable


def _child(fn, args, queue):
    start = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((result, seconds, peak_kib * 1024))


def run_measured(fn: Callable, *args) -> tuple[Any, float, int]:
    """Run fn(*args) in a fresh process: (result, seconds, peak RSS bytes of that process)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    while True:
        try:
            out = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not proc.is_alive():  # killed (e.g. by the OOM killer): say so instead of waiting forever
                raise RuntimeError(f"benchmark process died with exit code {proc.exitcode}") from None
    proc.join()
    return out


def figure(name: str, value: float, unit: str = "", target: str = "") -> None:
    text = f"{name}: {value:,.1f}{(' ' + unit) if unit else ''}"
    print(text + (f" (target {target})" if target else ""), flush=True)
