"""Progress lines for long steps, at a pace a person reads."""

from __future__ import annotations

import time
from typing import Callable

PROGRESS_EVERY_S = 10.0


class ProgressLog:
    """Passes a progress line to `log` at most every `every_s` seconds, and always the final one. In a
    run each line is a stored Dagster event (~5 ms): math verification logged every 500 rows, ~500
    lines and ~2.5 s a 250k-response partition, and the lines buried the rest of the run log."""

    def __init__(self, log: Callable[[str], None], every_s: float = PROGRESS_EVERY_S, first_at_once: bool = True):
        """`first_at_once`: the first line says the step has started; else it waits `every_s` too."""
        self.log, self.every_s = log, every_s
        self.last = float("-inf") if first_at_once else time.monotonic()

    def __call__(self, message: str, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self.last >= self.every_s:
            self.last = now
            self.log(message)
