"""Teachers of kind `import`: responses that already exist (AM 1.4M / AM 40M / SkyT1 / any JSONL), read
through ingest's readers and served by an `Engine` that looks each question up by normalized text.

Here, not in resources/: reading a dataset file is ingest's work, and resources/ import nothing above them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Iterator

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from am_assets.core.schema import text_hash
from am_assets.ingest.api import MISSING, RowError, get_path, read_records
from resources.config import ImportTeacher
from resources.engines import Completion, Engine, engine_key
from resources.file_digest import cache_root

_log = logging.getLogger(__name__)


def teacher_engine(engines, teacher) -> Engine:
    """The engine of any teacher: imports are built here, the others by the `EnginesResource`; all of
    them live in its pool (opened once per step or command)."""
    if teacher.kind == "import":
        # nothing to close: the index it reads is a cache that outlives the pool
        return engines.pool.get(("import", engine_key(teacher)), lambda: ImportEngine(teacher))
    return engines.engine(teacher)


def import_records(cfg: ImportTeacher) -> Iterator[tuple[str, str, str | None]]:
    """(question, response, model_name) from a file in one of the known layouts, streamed."""
    for line, rec in read_records(Path(cfg.path), max_row_bytes=64_000_000):  # long traces
        if isinstance(rec, RowError):
            _log.warning("%s row %s: unreadable, skipped: %s", cfg.path, line, rec)
            continue
        try:
            item = _import_one(cfg, rec)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            _log.warning("%s row %s: skipped: %s", cfg.path, line, e)
            continue
        if item is not None:
            yield item


def _import_one(cfg, rec):
    if cfg.layout == "am_1.4m":
        msgs = rec["messages"]
        user = [m for m in msgs if m.get("role") == "user"][-1]
        asst = [m for m in msgs if m.get("role") == "assistant"][-1]
        info = asst.get("info") or {}
        text = asst.get("content") or ""
        if not text and (info.get("think_content") or info.get("answer_content")):
            text = f"<think>\n{info.get('think_content') or ''}\n</think>\n<answer>\n{info.get('answer_content') or ''}\n</answer>"
        return user["content"], text, info.get("model_name") or info.get("source")
    if cfg.layout == "am_40m":
        if cfg.model_name and rec.get("model_name") != cfg.model_name:
            return None
        return rec["question"], rec["answer"], rec.get("model_name")
    qf, rf = ("question", "code.0") if cfg.layout == "skyt1" else (cfg.question_field, cfg.response_field)
    q, r = get_path(rec, qf), get_path(rec, rf)
    if q is MISSING or r is MISSING:
        raise KeyError(f"field {qf if q is MISSING else rf} missing")
    return str(q), str(r), None


_SPILL_SCHEMA = pa.schema([("qhash", pa.string()), ("ordinal", pa.int64()), ("response", pa.string()),
                           ("model_name", pa.string())])
_SPILL_BATCH = 20_000  # records held in memory while the index is written
_INDEX_TTL_S = 7 * 86_400


class ImportEngine(Engine):
    """Looks up the last user message by normalized text; returns up to n recorded responses
    (an empty list when the file has none for that question).

    The file is read once into a Parquet index, `_SPILL_BATCH` records at a time; each partition then
    scans it with a filter on its own questions' hashes, so memory grows with a partition, not with the
    file (a dict of every response text was ~2-4 GB at 4M responses). The index is a cache kept across
    commands (`index_root()`), named by the teacher's settings and the file's content hash: adding a
    source re-reads no teacher file (5 s per 200k responses here), and an edited file gets a new index.
    Indexes unused for `_INDEX_TTL_S` are removed when another one is built."""

    kind = "import"

    def __init__(self, cfg: ImportTeacher, root: Path | None = None):
        self.cfg = cfg
        self.model = cfg.model
        root = Path(root or index_root())
        key = hashlib.blake2b(f"{engine_key(cfg)}|{cfg.fingerprint()}".encode(), digest_size=12).hexdigest()
        self.path = root / f"{key}.parquet"
        if self.path.exists():
            os.utime(self.path)  # recently used: kept by the pruning below
            return
        root.mkdir(parents=True, exist_ok=True)
        _prune(root)
        # written under a unique name, then renamed: a reader never sees half an index, and two processes
        # building the same one at once both succeed (same content)
        tmp = root / f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial"
        try:
            _write_index(cfg, tmp)
            tmp.replace(self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def lookup(self, questions: list[str], n: int) -> dict[str, list[tuple[str, str | None]]]:
        """question hash -> its first n responses in file order, for these questions only."""
        hashes = sorted({text_hash(q) for q in questions})
        found = (pl.scan_parquet(self.path).filter(pl.col("qhash").is_in(hashes)).sort("ordinal")
                 .group_by("qhash", maintain_order=True).head(n).collect())
        out: dict[str, list[tuple[str, str | None]]] = {}
        for h, response, model_name in found.select("qhash", "response", "model_name").iter_rows():
            out.setdefault(h, []).append((response, model_name))
        return out

    def chat(self, conversations, sampling):
        users = [next((m["content"] for m in reversed(conv) if m["role"] == "user"), "") for conv in conversations]
        index = self.lookup(users, sampling.n)
        return [[Completion(text=r, finish_reason="imported", model=m or self.cfg.model)
                 for r, m in index.get(text_hash(u), [])] for u in users]

    def chat_stream(self, conversations, sampling, chunk_size, flush_s=60.0):
        # one scan of the index and one commit for the whole partition: chunked commits protect
        # generation work from a kill, and a lookup has none to lose (per-chunk commits cost ~75 ms
        # each and grew the Delta log by ~50 commits per partition at 50k queries)
        yield list(enumerate(self.chat(conversations, sampling)))


def index_root() -> Path:
    """Where import indexes are cached: $AM_DISTILL_CACHE/import-index (default: the system temp folder)."""
    return cache_root() / "import-index"


def _write_index(cfg: ImportTeacher, path: Path) -> int:
    """Stream the file's (question hash, ordinal, response, model_name) into one Parquet file."""
    records = 0
    cols: tuple[list, list, list, list] = ([], [], [], [])  # qhash, ordinal, response, model_name
    with pq.ParquetWriter(path, _SPILL_SCHEMA) as writer:
        for question, response, model_name in import_records(cfg):
            for col, value in zip(cols, (text_hash(question), records, response, model_name)):
                col.append(value)
            records += 1
            if len(cols[0]) >= _SPILL_BATCH:
                writer.write_table(_spill_table(cols))
                cols = ([], [], [], [])
        writer.write_table(_spill_table(cols))
    return records


def _prune(root: Path) -> None:
    """Remove indexes unused for _INDEX_TTL_S, and partial files a killed build left (older than a day)."""
    now = time.time()
    for f in root.iterdir():
        ttl = 86_400 if f.name.endswith(".partial") else _INDEX_TTL_S
        try:
            if now - f.stat().st_mtime > ttl:
                f.unlink()
        except OSError:  # another process removed or renamed it
            pass


def _spill_table(cols) -> pa.Table:
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols, _SPILL_SCHEMA)], schema=_SPILL_SCHEMA)
