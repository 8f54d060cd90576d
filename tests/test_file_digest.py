"""Digests of input files kept across commands (resources/file_digest.py): a new process does not read
an unchanged file again, and any change to a file, or a file written too recently to tell, is read."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from resources import file_digest
from resources.config import FileSource, _file_hash
from am_assets.ingest.api import source_fingerprint
from tests.conftest import PROJECT_DIR


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AM_DISTILL_CACHE", str(tmp_path / "cache"))
    _new_process()
    yield tmp_path / "cache" / "file-digests.json"
    _new_process()


class Counting:
    def __init__(self, path):
        self.path, self.calls = path, 0

    def __call__(self) -> str:
        self.calls += 1
        return hashlib.blake2b(self.path.read_bytes(), digest_size=12).hexdigest()


def _new_process() -> None:
    file_digest._MEMORY.clear()  # what another command starts with: the kept file only
    file_digest._UNSURE.clear()


def test_a_digest_is_kept_until_the_file_changes_even_with_its_size_and_mtime_put_back(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(file_digest, "RACY_NS", 0)  # the racy rule has its own test
    f = tmp_path / "teacher.jsonl"
    f.write_text('{"question": "1+1", "response": "2"}\n')
    digest = Counting(f)
    first = file_digest.kept_digest("file a", [f], digest)
    assert digest.calls == 1 and cache.exists()
    _new_process()
    assert file_digest.kept_digest("file a", [f], digest) == first and digest.calls == 1
    assert file_digest.kept_digest("file b", [f], digest) == first and digest.calls == 2  # another key: read
    st = os.stat(f)
    f.write_text('{"question": "1+1", "response": "3"}\n')  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back; the ctime cannot be
    assert os.stat(f).st_size == st.st_size and os.stat(f).st_mtime_ns == st.st_mtime_ns
    _new_process()
    changed = file_digest.kept_digest("file a", [f], digest)
    assert digest.calls == 3 and changed != first


def test_a_file_written_just_before_its_reading_is_read_again_once_it_is_old_enough(cache, tmp_path, monkeypatch):
    """A write in the same timestamp tick as the reading could leave the stamps as they were: such a
    digest is not kept for other commands, and this process reads the file again once it is RACY_NS
    old (then keeps it). Until then it does not hash the file at every call."""
    monkeypatch.setattr(file_digest, "RACY_NS", 1_500_000_000)
    f = tmp_path / "fresh.jsonl"
    f.write_text("x\n")
    digest = Counting(f)
    file_digest.kept_digest("fresh", [f], digest)
    file_digest.kept_digest("fresh", [f], digest)
    assert digest.calls == 1 and not cache.exists()  # reused in this process only
    _new_process()
    file_digest.kept_digest("fresh", [f], digest)
    assert digest.calls == 2 and not cache.exists()  # another command reads it again
    time.sleep(1.6)
    file_digest.kept_digest("fresh", [f], digest)
    assert digest.calls == 3 and cache.exists()  # old enough: read once more, and kept
    _new_process()
    file_digest.kept_digest("fresh", [f], digest)
    assert digest.calls == 3


def test_another_process_reuses_the_kept_digest(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(file_digest, "RACY_NS", 0)
    f = tmp_path / "import.jsonl"
    f.write_text('{"question": "q", "response": "r"}\n' * 100)
    first = _file_hash(f)
    kept = json.loads(cache.read_text())
    assert [e["digest"] for e in kept.values()] == [first]
    # the other process finds the entry and does not open the file: it cannot, it is not readable there
    code = ("import builtins, sys; real = builtins.open\n"
            "def guarded(p, *a, **k):\n"
            "    assert str(p) != sys.argv[1], 'the file was read again'\n"
            "    return real(p, *a, **k)\n"
            "builtins.open = guarded\n"
            "from pathlib import Path; from resources.config import _file_hash; print(_file_hash(Path(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", code, str(f)], cwd=PROJECT_DIR, capture_output=True, text=True,
                         env={**os.environ, "AM_DISTILL_CACHE": str(cache.parent)}, check=True)
    assert out.stdout.strip() == first


def test_source_versions_are_the_ones_of_before(cache, tmp_path, monkeypatch):
    """A lake built before keeps its data versions: the digest is the one the bytes always gave."""
    monkeypatch.setattr(file_digest, "RACY_NS", 0)
    f = tmp_path / "src.jsonl"
    f.write_text('{"question": "What is 2+2?", "answer": "4"}\n')
    src = FileSource(name="s", kind="file", path=f)
    settings = json.dumps(src.model_dump(mode="json"), sort_keys=True)
    expected = hashlib.blake2b(settings.encode() + f.read_bytes(), digest_size=12).hexdigest()
    assert source_fingerprint(src) == expected
    _new_process()
    assert source_fingerprint(src) == expected
    f.write_text('{"question": "What is 2+3?", "answer": "5"}\n')
    assert source_fingerprint(src) != expected
    missing = FileSource(name="m", kind="file", path=tmp_path / "nope.jsonl")
    assert source_fingerprint(missing)  # never raises
