"""Pure ingestion and cleaning: source config in, Polars frames out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

import polars as pl

from am_assets.ingest.adapters import (
    FieldError,
    humaneval_path,
    humaneval_rows,
    reasoning_gym_rows,
    record_adapter,
)
from am_assets.ingest.containers import expand
from am_assets.ingest.select import SelectionStats, filter_records, sampled_in
from am_assets.ingest.readers import (RowError, SourceFileError, check_readable, csv_header, detect_format,
                                     read_records)
from am_assets.core.schema import QUERY_SCHEMA, REJECTED_SCHEMA, query_id
from resources.config import CleaningConfig, FileSource, HumanEvalSource, ReasoningGymSource
from resources.file_digest import hash_file, kept_digest


def source_versions(cfg) -> dict[str, str]:
    """Data version of every configured source (the `source_files` observable asset and the sensors)."""
    return {s.name: source_fingerprint(s) for s in cfg.all_sources()}


def source_fingerprint(source) -> str:
    """Data version of a source: its settings plus, for files, the file's bytes. Kept across commands
    while the files are unchanged (resources/file_digest.py): the sensors ask every tick.

    Never raises: a missing or unreadable file gets a version that says so (not kept, so it changes
    once the file can be read), and only that source's partition fails, when it runs."""
    settings = json.dumps(source.model_dump(mode="json"), sort_keys=True)
    path = source_file_path(source)
    files = _data_files(path) if path is not None else []

    def digest() -> str:
        h = hashlib.blake2b(settings.encode(), digest_size=12)
        for f in files:
            if len(files) > 1:  # which part holds which bytes (a single file: its bytes alone, as ever)
                h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            hash_file(h, f)
        return h.hexdigest()

    try:
        return kept_digest(f"source\n{settings}\n{path}", files, digest)
    except OSError as e:
        h = hashlib.blake2b(settings.encode(), digest_size=12)
        h.update(f"unreadable: {e.errno}".encode())
        return h.hexdigest()


def _data_files(path: Path) -> list[Path]:
    """The files whose bytes make a source's data version: the file, or every file of its parts (a
    folder, a glob, a saved dataset). Never raises: an unreadable path has none."""
    try:
        parts = expand(path)
        return [f for p in parts for f in (sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p])
                if f.is_file()]
    except OSError:
        return []


def source_file_path(source) -> Path | None:
    if isinstance(source, FileSource):
        return source.path
    if isinstance(source, HumanEvalSource):
        return humaneval_path()
    return None


def _records(source: FileSource, cleaning: CleaningConfig) -> Iterator[tuple]:
    """(row, record | RowError) over every part of the source path; rows are `part:row` when a folder or
    glob holds several parts, so lineage finds the raw row."""
    parts = expand(source.path)
    if not parts:
        raise SourceFileError(f"{source.path}: no data files (.jsonl, .json, .csv, .tsv, .parquet, .arrow, "
                              "optionally compressed) in this folder or glob")
    root = source.path if source.path.is_dir() else None
    for part in parts:
        label = (str(part.relative_to(root)) if root else part.name) if len(parts) > 1 else None
        for row, record in read_records(part, source.format, cleaning.max_row_bytes, source.records_path,
                                        source.split):
            key = f"{label}:{row}" if label else row
            yield key, (RowError(key, record.field, record.error, record.excerpt)
                        if isinstance(record, RowError) and label else record)


def _file_rows(source: FileSource, cleaning: CleaningConfig, stats: SelectionStats) -> Iterator[dict | RowError]:
    adapt = record_adapter(source)
    for lineno, record in filter_records(_records(source, cleaning), source.filter, stats):
        if isinstance(record, RowError):
            yield record
            continue
        try:
            row = adapt(record)
        except FieldError as e:
            yield RowError(lineno, e.field, e.message, _excerpt(record))
            continue
        except Exception as e:  # noqa: BLE001 - whatever an adapter trips on is this row's error, not the file's
            yield RowError(lineno, "<row>", f"cannot read the row: {type(e).__name__}: {e}"[:500], _excerpt(record))
            continue
        row.setdefault("source_row", str(lineno))
        yield row


def _excerpt(record) -> str:
    try:
        return json.dumps(record, default=str)[:200]  # ASCII, so lone surrogates come out escaped
    except (ValueError, RecursionError):
        return ""


def empty_source_warning(source, rows: pl.DataFrame, rejected: pl.DataFrame, deselected: int = 0) -> str | None:
    """A warning for a source that gave no rows at all (an empty or whitespace-only file, a gzip of
    nothing, a header without rows): not an error, but never silent. Rows left out by the source's
    `filter`/`sample` are not emptiness."""
    if rows.height or rejected.height or deselected:
        return None
    path = source_file_path(source)
    return f"{source.name}: no rows in {path or f'<{source.kind}>'} (an empty source); check the file and its mapping"


def header_problems(source: FileSource) -> list[str]:
    """Mapped fields missing from a CSV/TSV file's header (`am-distill validate`): caught before a run
    instead of every row being rejected. Other formats have no header to check cheaply."""
    try:
        parts = expand(source.path)
        if not parts:
            raise SourceFileError(f"{source.path}: no data files in this folder or glob")
        first = parts[0]
        fmt = detect_format(first) if source.format == "auto" else source.format
        if fmt != "hf_dataset":
            check_readable(first)  # `validate` names a missing or unreadable file too
        if source.layout != "mapped" or fmt not in ("csv", "tsv"):
            return []
        header = set(csv_header(first, fmt))
    except (SourceFileError, OSError) as e:
        return [f"{source.name}: {e}"]
    m = source.mapping
    fields = [("question", m.question)] + [(k, getattr(m, k)) for k in (
        "answer", "category", "entry_point", "instruction_constraints", "id", "answer_letter",
        "answer_index", "correct") if getattr(m, k)]
    tests = [m.test_cases] if isinstance(m.test_cases, str) else (m.test_cases or [])
    fields += [("test_cases", f) for f in tests]
    fields += [(f"incorrect.{i}", f) for i, f in enumerate(m.incorrect)]
    fields += [(f"options.{i}", f) for i, f in enumerate(m.options)] if isinstance(m.options, list) else (
        [("options", m.options)] if m.options else [])
    return [f"{source.name}: mapping.{key}: no column {path.split('.')[0]!r} in {source.path.name} "
            f"(columns: {', '.join(sorted(header))})" for key, path in fields if path.split(".")[0] not in header]


_CHUNK = 50_000


def _generated_rows(source, stats: SelectionStats) -> Iterator[dict | RowError]:
    """reasoning-gym / HumanEval rows; `filter` sees the normalized row (question, metadata, ...)."""
    if isinstance(source, ReasoningGymSource):
        rows = reasoning_gym_rows(source.datasets, source.count, source.seed, source.category)
    else:
        rows = humaneval_rows()
    for _, row in filter_records(enumerate(rows, 1), source.filter, stats):
        yield row


def ingest_source(source, cleaning: CleaningConfig,
                  stats: SelectionStats | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(normalized rows, rejected rows) for one configured source; `stats` counts deselected rows."""
    stats = stats if stats is not None else SelectionStats()
    if isinstance(source, FileSource):
        items: Iterator[dict | RowError] = _file_rows(source, cleaning, stats)
    else:
        items = _generated_rows(source, stats)
    path = source_file_path(source)
    file_name = str(path) if path else f"<{source.kind}>"
    frames, rows, rejected = [], [], []
    for item in items:
        if isinstance(item, RowError):
            rejected.append({"source": source.name, "source_file": file_name, "source_row": str(item.row),
                             "field": item.field, "error": item.error, "excerpt": item.excerpt})
            continue
        item["query_id"] = query_id(item["question"])
        if not sampled_in(item["query_id"], source.sample):
            stats.sampled_out += 1
            continue
        if source.limit is not None and len(rows) + sum(f.height for f in frames) >= source.limit:
            stats.limit_reached = True  # stop reading: the rest of a big file is never loaded
            break
        item["source"] = source.name
        item["source_file"] = file_name
        rows.append(item)
        if len(rows) == _CHUNK:  # Python dicts cost ~10x their columnar size: convert as we go
            frames.append(pl.DataFrame(rows, schema=QUERY_SCHEMA, orient="row"))
            rows = []
    frames.append(pl.DataFrame(rows, schema=QUERY_SCHEMA, orient="row") if rows else pl.DataFrame(schema=QUERY_SCHEMA))
    return (pl.concat(frames, rechunk=True),
            pl.DataFrame(rejected, schema=REJECTED_SCHEMA) if rejected else pl.DataFrame(schema=REJECTED_SCHEMA))


# ---------------------------------------------------------------- cleaning

URL_PATTERN = r"(?i)(https?://|ftp://|www\.[a-z0-9-]+\.[a-z]{2,})"
# references to something the model cannot see; [asy] drawings are text, so they stay
MEDIA_PATTERN = (
    r"(?i)(<img\b|!\[[^\]]*\]\(|\.(png|jpe?g|gif|svg|bmp)\b|"
    r"\b(see|shown in|shown below|in|from|refer to|according to|based on|using|given in) (the |this )?"
    r"(following |above |below |attached |given )?(figure|image|picture|diagram|photo|table|chart|graph)\b|"
    r"\b(figure|fig\.|table) \d+)"
)
# the figure or table is in the text itself (MATH's [asy] drawings, LaTeX/markdown tables): nothing is missing
INLINE_FIGURE_PATTERN = r"(?im)(\[asy\]|\\begin\{(tabular|array)\}|^\s*\|.*\|\s*$)"
INCOMPLETE_PATTERN = r"(\.\.\.|…)\s*$|^\W*$"

# first rule that fires names the reason; order = precedence
CLEAN_RULES = ("empty_or_incomplete", "too_long", "contains_url", "refers_to_media", "unicode_ratio", "duplicate")


def clean_queries(df: pl.DataFrame, cfg: CleaningConfig) -> pl.DataFrame:
    """Every row kept; `drop_reason` is null or the first rule that fired (CLEAN_RULES order)."""
    q = pl.col("question")
    stripped = q.str.strip_chars()
    n_chars = stripped.str.len_chars()
    non_ascii = q.str.count_matches(r"[^\x00-\x7F]")
    first_seen = pl.int_range(pl.len()).over("query_id") == 0  # first occurrence in file order wins
    reason = (
        pl.when(q.is_null() | (n_chars < cfg.min_chars) | stripped.str.contains(INCOMPLETE_PATTERN))
        .then(pl.lit("empty_or_incomplete"))
        .when(n_chars > cfg.max_chars).then(pl.lit("too_long"))
        .when(q.str.contains(URL_PATTERN)).then(pl.lit("contains_url"))
        .when(q.str.contains(MEDIA_PATTERN) & ~q.str.contains(INLINE_FIGURE_PATTERN)).then(pl.lit("refers_to_media"))
        .when(non_ascii / pl.max_horizontal(q.str.len_chars(), 1) > cfg.max_unicode_ratio).then(pl.lit("unicode_ratio"))
        .when(~first_seen).then(pl.lit("duplicate"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    return df.with_columns(drop_reason=reason)


def drop_counts(clean: pl.DataFrame) -> dict[str, int]:
    counts = dict.fromkeys(CLEAN_RULES, 0)
    for reason, n in clean.group_by("drop_reason").len().iter_rows():
        if reason is not None:
            counts[reason] = n
    return counts
