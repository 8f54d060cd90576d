"""Reading a field out of a source record, and the error that names it."""

from __future__ import annotations

from typing import Any


class FieldError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


_MISSING = object()


def get_path(record: dict, path: str) -> Any:
    """`a.b.0.c` into nested dicts and lists; _MISSING when absent."""
    cur: Any = record
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.lstrip("-").isdigit() and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur
