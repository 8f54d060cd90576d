"""Read records from JSONL, JSON arrays, CSV/TSV (each optionally gzipped) and Parquet, one
(row number, record | error) at a time.

A broken row becomes a `RowError` and reading goes on; a missing or unreadable file raises
`SourceFileError` naming the path, which fails the partition.
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


class SourceFileError(RuntimeError):
    """The whole file cannot be read."""


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    error: str
    excerpt: str = ""


def _excerpt(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        raw = raw[:400].decode("utf-8", errors="replace")
    return raw[:200]


def detect_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".jsonl.gz", "jsonl"), (".ndjson", "jsonl"),
                        (".json", "json"), (".json.gz", "json"), (".parquet", "parquet"),
                        (".csv", "csv"), (".csv.gz", "csv"), (".tsv", "tsv"), (".tsv.gz", "tsv")):
        if name.endswith(suffix):
            return fmt
    raise SourceFileError(f"{path}: unknown file type (expected .jsonl, .json, .csv or .tsv, each optionally .gz, "
                          "or .parquet)")


def _open_bytes(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_records(path: Path, fmt: str = "auto", max_row_bytes: int = 1_000_000) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    path = Path(path)
    if not path.is_file():
        raise SourceFileError(f"{path}: file not found")
    fmt = detect_format(path) if fmt == "auto" else fmt
    try:
        if fmt == "jsonl":
            yield from _read_jsonl(path, max_row_bytes)
        elif fmt == "json":
            yield from _read_json_array(path, max_row_bytes)
        elif fmt == "parquet":
            yield from _read_parquet(path)
        elif fmt in ("csv", "tsv"):
            yield from _read_delimited(path, "," if fmt == "csv" else "\t", max_row_bytes)
        else:
            raise SourceFileError(f"{path}: unsupported format {fmt!r}")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise SourceFileError(f"{path}: cannot read: {e}") from e


def csv_header(path: Path, fmt: str = "auto") -> list[str]:
    """The column names of a CSV/TSV file (for config checks), [] when it is empty."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    with _open_bytes(path) as f:
        line = f.readline().decode("utf-8-sig", errors="replace")
    return next(csv.reader([line], delimiter="," if fmt == "csv" else "\t"), [])


def _read_jsonl(path: Path, max_row_bytes: int) -> Iterator[tuple[int, dict | RowError]]:
    with _open_bytes(path) as f:
        for lineno, raw in enumerate(f, start=1):
            if len(raw) > max_row_bytes:
                yield lineno, RowError(lineno, "<row>", f"row is {len(raw)} bytes, over the {max_row_bytes}-byte limit", _excerpt(raw))
                continue
            if not raw.strip():
                continue  # blank lines are layout, not rows
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # tolerate a BOM
            except UnicodeDecodeError as e:
                yield lineno, RowError(lineno, "<row>", f"invalid UTF-8 at byte {e.start}", _excerpt(raw))
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                yield lineno, RowError(lineno, "<row>", f"malformed JSON: {e.msg} at column {e.colno}", _excerpt(text))
                continue
            if not isinstance(record, dict):
                yield lineno, RowError(lineno, "<row>", f"expected a JSON object, got {type(record).__name__}", _excerpt(text))
                continue
            yield lineno, record


def _read_json_array(path: Path, max_row_bytes: int) -> Iterator[tuple[int, dict | RowError]]:
    with _open_bytes(path) as f:
        raw = f.read()
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # JSON lines under a .json name (e.g. MATH's math_test5000.json.gz)
            yield from _read_jsonl(path, max_row_bytes)
            return
        raise SourceFileError(f"{path}: not a valid JSON document: {e}") from e
    except UnicodeDecodeError as e:
        raise SourceFileError(f"{path}: not valid UTF-8 at byte {e.start}") from e
    if isinstance(data, dict):  # {"data": [...]} or a single record
        data = next((v for v in data.values() if isinstance(v, list)), [data])
    if not isinstance(data, list):
        raise SourceFileError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    for i, record in enumerate(data, start=1):
        if isinstance(record, dict):
            yield i, record
        else:
            yield i, RowError(i, "<row>", f"expected a JSON object, got {type(record).__name__}", _excerpt(json.dumps(record)))


def _read_parquet(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a corrupt footer
        raise SourceFileError(f"{path}: not a readable Parquet file: {e}") from e
    row = 0
    for batch in pf.iter_batches(batch_size=8192):
        for record in batch.to_pylist():
            row += 1
            yield row, record


class _Lines:
    """Decoded lines for the csv module, counting lines and bytes and remembering invalid UTF-8."""

    def __init__(self, f):
        self.f, self.line, self.bytes, self.bad = f, 0, 0, set()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        raw = next(self.f)
        self.line += 1
        self.bytes += len(raw)
        try:
            return raw.decode("utf-8-sig" if self.line == 1 else "utf-8")
        except UnicodeDecodeError:
            self.bad.add(self.line)
            return raw.decode("utf-8", errors="replace")


def _read_delimited(path: Path, delimiter: str, max_row_bytes: int) -> Iterator[tuple[int, dict | RowError]]:
    """CSV/TSV with a header row, streamed with the csv module: every value stays the file's text (no
    type guessing: AIME's "025" stays "025"), and one bad row is one RowError. Row number = the line
    the row starts on (quoted fields may span lines)."""
    csv.field_size_limit(max(csv.field_size_limit(), max_row_bytes))
    with _open_bytes(path) as f:
        lines = _Lines(f)
        reader = csv.reader(lines, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        while True:
            start, size = lines.line + 1, lines.bytes
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield start, RowError(start, "<row>", f"malformed CSV: {e}")
                continue
            if not values:
                continue  # blank line
            error = None
            if lines.bytes - size > max_row_bytes:
                error = f"row is {lines.bytes - size} bytes, over the {max_row_bytes}-byte limit"
            elif any(n in lines.bad for n in range(start, lines.line + 1)):
                error = "invalid UTF-8"
            elif len(values) != len(header):
                error = f"{len(values)} fields, the header has {len(header)}"
            if error:
                yield start, RowError(start, "<row>", error, _excerpt(delimiter.join(values)))
            else:
                yield start, dict(zip(header, values))
