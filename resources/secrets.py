"""API keys: checked before use, and scrubbed from every text an engine hands back.

A key can reach an error text whole (a server that echoes the Authorization header), cut at either
end (a body cut at N characters, a server that truncates what it echoes) or escaped (httpx's
`Illegal header value b'Bearer sk-...\\r'`). `Scrubber` masks all of these: the key, any run of
`MIN_PIECE` or more of its characters, and any prefix or suffix of `MIN_EDGE` or more characters,
in its raw, stripped and escaped spellings.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Iterable

MASK = "***"
MIN_PIECE = 6  # any run of the key this long is masked wherever it appears
MIN_EDGE = 4  # a prefix or suffix this long (the key cut at one end) is masked too


def key_problem(value: str) -> str | None:
    """Why a key cannot go into an HTTP header, or None. Never quotes the value."""
    if not value:
        return "is empty"
    if any(c.isspace() for c in value):
        where = "at its end" if value != value.rstrip() else "at its start" if value != value.lstrip() else "inside"
        return f"contains whitespace {where} (a newline or \\r copied with it?)"
    if any(unicodedata.category(c).startswith("C") for c in value):
        return "contains control or unprintable characters"
    if not value.isascii():
        return "contains non-ASCII characters (HTTP headers are ASCII)"
    return None


def _spellings(secret: str) -> set[str]:
    """The ways a key shows up in text: as is, stripped, Python-escaped (bytes/str reprs), JSON-escaped."""
    out = {secret, secret.strip(), secret.encode("unicode_escape").decode("ascii"), json.dumps(secret)[1:-1]}
    return {s for s in out if len(s) >= MIN_EDGE}


class Scrubber:
    """Callable text -> text with every trace of the given secrets replaced by `MASK`."""

    def __init__(self, secrets: Iterable[str | None]):
        self.pieces: set[str] = set()  # every MIN_PIECE-long run of every spelling
        self.edges: set[str] = set()  # prefixes and suffixes shorter than MIN_PIECE (and short keys whole)
        for secret in filter(None, secrets):
            for s in _spellings(secret):
                self.edges |= {s[:k] for k in range(MIN_EDGE, min(MIN_PIECE, len(s) + 1))}
                self.edges |= {s[-k:] for k in range(MIN_EDGE, min(MIN_PIECE, len(s) + 1))}
                self.pieces |= {s[i:i + MIN_PIECE] for i in range(len(s) - MIN_PIECE + 1)}

    def __bool__(self) -> bool:
        return bool(self.pieces or self.edges)

    def __call__(self, text: str | None, edges: bool = True) -> str | None:
        """`edges=False` masks only runs of MIN_PIECE or more (for model output, where a 4-character
        key end such as '6789' is more likely an answer than a leak)."""
        if not text or not self:
            return text
        marks = self._marks(text, edges)
        if not any(marks):
            return text
        out, i = [], 0
        while i < len(text):
            if marks[i]:
                while i < len(text) and marks[i]:
                    i += 1
                out.append(MASK)
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def _marks(self, text: str, edges: bool) -> bytearray:
        marks = bytearray(len(text))
        needles = [p for p in self.pieces if p in text]  # substring search in C first: usually none
        needles += [e for e in self.edges if e in text] if edges else []
        for needle in needles:
            start = text.find(needle)
            while start >= 0:
                marks[start:start + len(needle)] = b"\x01" * len(needle)
                start = text.find(needle, start + 1)
        return marks
