"""Teachers of kind `import`: responses that already exist (AM 1.4M / AM 40M / SkyT1 / any JSONL), read
through ingest's readers and served by an `Engine` that looks each question up by normalized text.

Here, not in resources/: reading a dataset file is ingest's work, and resources/ import nothing above them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from am_assets.core.schema import text_hash
from am_assets.ingest.api import MISSING, RowError, get_path, read_records
from resources.config import ImportTeacher
from resources.engines import Completion, Engine, engine_key

_log = logging.getLogger(__name__)


def teacher_engine(engines, teacher) -> Engine:
    """The engine of any teacher: imports are built here, the others by the `EnginesResource`; all of
    them live in its pool (an import index is read once per step or command)."""
    if teacher.kind == "import":
        return engines.pool.get(("import", engine_key(teacher)), lambda: ImportEngine(teacher))
    return engines.engine(teacher)


def import_records(cfg: ImportTeacher) -> list[tuple[str, str, str | None]]:
    """(question, response, model_name) from a file in one of the known layouts."""
    out = []
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
            out.append(item)
    return out


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


class ImportEngine(Engine):
    """Looks up the last user message by normalized text; returns up to n recorded responses
    (an empty list when the file has none for that question)."""

    kind = "import"

    def __init__(self, cfg: ImportTeacher):
        self.cfg = cfg
        self.model = cfg.model
        self._hash = text_hash
        self.index: dict[str, list[tuple[str, str | None]]] = {}
        for question, response, model_name in import_records(cfg):
            self.index.setdefault(text_hash(question), []).append((response, model_name))

    def chat(self, conversations, sampling):
        out = []
        for conv in conversations:
            user = next((m["content"] for m in reversed(conv) if m["role"] == "user"), "")
            found = self.index.get(self._hash(user), [])[: sampling.n]
            out.append([Completion(text=r, finish_reason="imported", model=m or self.cfg.model) for r, m in found])
        return out
