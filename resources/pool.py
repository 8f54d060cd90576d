"""The loaded models of one step (or of one CLI command): vLLM engines, embedders, perplexity models,
the math worker pool. Each loads on first use, under its key, and all close together.

    with ModelPool() as pool:
        llm = pool.get(("vllm", path, ...), load=lambda: LLM(...), close=shutdown)

`EnginesResource` (resources/engines.py) owns one per step in `dagster dev` (opened lazily, closed at
step end); the CLI runner opens one and hands it to every run of a command, so each model loads once.
Nothing here is module-level: two pools never share a model, and a closed pool holds nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Hashable, TypeVar

_log = logging.getLogger(__name__)

T = TypeVar("T")


class ModelPool:
    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        self._closers: dict[Hashable, Callable[[Any], None] | None] = {}
        self._lock = threading.RLock()  # loads may nest (an engine loads its vLLM model)
        self.closed = False

    def get(self, key: Hashable, load: Callable[[], T], close: Callable[[T], None] | None = None) -> T:
        """The item under `key`, loaded by `load()` the first time; `close(item)` runs when the pool closes."""
        with self._lock:
            if self.closed:
                raise RuntimeError("this model pool is closed (its step or command ended)")
            if key not in self._items:
                self._items[key] = load()
                self._closers[key] = close
            return self._items[key]

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def close(self) -> None:
        """Close every item, newest first (an engine before the model it uses); errors are logged, not
        raised: a model that is already gone has nothing to free."""
        with self._lock:
            for key in reversed(list(self._items)):
                closer = self._closers.get(key)
                if closer is not None:
                    try:
                        closer(self._items[key])
                    except Exception as e:  # noqa: BLE001 - see docstring
                        _log.warning("closing %s: %s", key[0] if isinstance(key, tuple) else key, e)
            self._items.clear()
            self._closers.clear()
            self.closed = True

    def __enter__(self) -> "ModelPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
