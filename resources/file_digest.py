"""Digests of input files, kept across processes.

The data version of a file source, an import teacher and a file benchmark hashes the file's bytes,
and every command asks for them (as every sensor tick does). In-process memos spared the repeats
within a process, but each new command read every file again: ~1 s a GB, 3.4 s of the 1M-query +1%
step (2.7 GB of import files) and minutes a command for a 40M-response import.

`kept_digest` keeps a digest in $AM_DISTILL_CACHE/file-digests.json under what was hashed (the caller
names it, settings included) with every file's path, size, mtime, ctime, inode and device. A write to
a file sets its ctime to the present, which no tool sets back, so a changed file misses. A digest is
kept only when no file changed during its reading nor in the RACY_NS before it began (git's
"racily clean" rule): on a file system with coarse timestamps, a write in the same tick as the
reading would otherwise leave the stamp as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

RACY_NS = 2_000_000_000
MAX_ENTRIES = 4096
_MEMORY: dict[str, dict] = {}  # this process's view of the file, refreshed from disk on a miss
# digests of files changed too recently to keep: reused in this process until the files are RACY_NS
# old, then read once more (and kept), so a file written in the same tick is seen within RACY_NS
_UNSURE: dict[str, dict] = {}


def cache_root() -> Path:
    """$AM_DISTILL_CACHE, default a folder in the system temp folder (shared by the import indexes)."""
    return Path(os.environ.get("AM_DISTILL_CACHE") or Path(tempfile.gettempdir()) / "am-distill-cache")


def hash_file(h, path: Path):
    """`h` (a hashlib object) updated with the file's bytes, read in blocks; returns `h`."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: h)


def _store() -> Path:
    return cache_root() / "file-digests.json"


def _stamps(files: Sequence[Path]) -> list[list]:
    out = []
    for f in files:
        st = os.stat(f)
        out.append([str(Path(f).resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev])
    return out


def _key(what: str) -> str:
    return hashlib.blake2b(what.encode(), digest_size=16).hexdigest()


def _load() -> dict[str, dict]:
    try:
        data = json.loads(_store().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):  # none yet, or unreadable: hash again
        return {}


def _keep(key: str, entry: dict) -> None:
    """Add the entry to the file (merged with what other processes kept; renamed into place)."""
    data = _load()
    data[key] = entry
    if len(data) > MAX_ENTRIES:  # the least recently kept go
        data = dict(sorted(data.items(), key=lambda kv: kv[1].get("kept", 0))[-MAX_ENTRIES:])
    _MEMORY.clear()
    _MEMORY.update(data)
    try:
        _store().parent.mkdir(parents=True, exist_ok=True)
        tmp = _store().with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(_store())
    except OSError:  # a read-only cache folder: the digest is only recomputed next time
        pass


def kept_digest(what: str, files: Sequence[Path], compute: Callable[[], str]) -> str:
    """compute(), a digest of `what` and the bytes of `files`, from the kept digests while every file
    is as it was when it was computed. Errors of compute() (an unreadable file) pass through."""
    try:
        stamps = _stamps(files)
    except OSError:
        return compute()
    key = _key(what)
    unsure = _UNSURE.get(key)
    if unsure is not None and unsure["stamps"] == stamps and time.time_ns() < unsure["until"]:
        return unsure["digest"]
    entry = _MEMORY.get(key)
    if entry is None or entry.get("stamps") != stamps:
        entry = _reload().get(key)  # another process may have kept it since
    if entry is not None and entry.get("stamps") == stamps:
        return entry["digest"]
    started = time.time_ns()
    digest = compute()
    try:
        unchanged = _stamps(files) == stamps
    except OSError:
        unchanged = False
    changed = max((max(s[2], s[3]) for s in stamps), default=0)
    if files and unchanged and changed < started - RACY_NS:
        _keep(key, {"stamps": stamps, "digest": digest, "kept": time.time_ns()})
    elif files and unchanged:
        _UNSURE[key] = {"stamps": stamps, "digest": digest, "until": changed + RACY_NS}
    return digest


def _reload() -> dict[str, dict]:
    _MEMORY.clear()
    _MEMORY.update(_load())
    return _MEMORY
