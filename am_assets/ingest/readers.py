"""Read records from JSONL, JSON arrays, CSV/TSV, Parquet and Arrow (each optionally .gz/.zst/.bz2/.xz:
containers.py) and datasets.save_to_disk folders, one
(row number, record | error) at a time.

A broken row becomes a `RowError` and reading goes on, whatever broke it (invalid UTF-8, a lone
surrogate escape, nesting too deep, a number too long to convert); a missing or unreadable file raises
`SourceFileError` naming the path, which fails that source's partition only.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from am_assets.ingest.containers import format_of, open_decompressed, read_arrow, read_errors, read_saved_dataset


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
    return raw[:200].encode("utf-8", errors="backslashreplace").decode("utf-8")  # no lone surrogates


def json_error_text(e: Exception, row_start: int | None = None) -> str:
    """A readable reason for a JSON value that does not parse (json's own messages, plus the errors it
    raises as other types). `row_start`: where the row begins in a larger text (positions count from it)."""
    if isinstance(e, json.JSONDecodeError):
        at = "" if e.msg.endswith(" at") else " at"  # "Unterminated string starting at" + " column 7"
        where = f"column {e.colno}" if row_start is None else f"character {e.pos - row_start + 1} of the row"
        return f"malformed JSON: {e.msg}{at} {where}"
    if isinstance(e, RecursionError):
        return "malformed JSON: nested too deeply to read"
    if "digits" in str(e):  # ValueError: Exceeds the limit (4300 digits) for integer string conversion
        return "malformed JSON: an integer with more than 4300 digits"
    return f"malformed JSON: {e}"


_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def may_hold_surrogates(text: str) -> bool:
    """Cheap test before `record_problem`: only a \\uD800-\\uDFFF escape makes a lone surrogate."""
    return _SURROGATE_ESCAPE.search(text) is not None


def record_problem(record: dict, bad_bytes: bool = False) -> tuple[str, str] | None:
    """(field, reason) for the first text in a record that is not valid Unicode: a lone surrogate from a
    JSON escape ("\\ud800"), or, when `bad_bytes`, an invalid UTF-8 byte kept by surrogateescape.
    Such text cannot be written (UTF-8) later, so the row is rejected here."""
    stack: list[tuple[str, object]] = [("", record)]
    while stack:  # iterative: the nesting depth is the file's
        path, value = stack.pop()
        if isinstance(value, dict):
            stack += [(f"{path}.{k}" if path else str(k), v) for k, v in reversed(value.items())]
            stack += [(path or "<row>", k) for k in value if isinstance(k, str)]
        elif isinstance(value, list):
            stack += [(f"{path}.{i}", v) for i, v in reversed(list(enumerate(value)))]
        elif isinstance(value, str) and not value.isascii() and (m := _SURROGATE.search(value)):
            bad = m.group()
            if bad_bytes and "\udc80" <= bad <= "\udcff":
                return path or "<row>", f"invalid UTF-8 (byte 0x{ord(bad) - 0xDC00:02X})"
            return path or "<row>", f"a lone surrogate (\\u{ord(bad):04x}) is not valid Unicode text"
    return None


def check_readable(path: Path) -> None:
    """SourceFileError naming the path when the file cannot be opened (missing, a directory, a symlink
    loop, no permission). Opens it, reads nothing."""
    try:
        if Path(path).is_dir():
            raise SourceFileError(f"{path}: is a directory, not a file")
        with open(path, "rb"):
            pass
    except OSError as e:
        why = "no such file" if isinstance(e, FileNotFoundError) else (e.strerror or str(e)).lower()
        raise SourceFileError(f"{path}: cannot read: {why}") from None


def detect_format(path: Path) -> str:
    fmt = format_of(Path(path))
    if fmt is None:
        raise SourceFileError(f"{path}: unknown file type (expected .jsonl, .json, .csv, .tsv, .parquet or .arrow, "
                              "each optionally .gz, .zst, .bz2 or .xz; or a datasets.save_to_disk folder)")
    return fmt


def read_records(path: Path, fmt: str = "auto", max_row_bytes: int = 1_000_000,
                 records_path: str | None = None, split: str | None = None) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """`records_path`: for .json documents that are an object, the dotted key that holds the rows."""
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt != "hf_dataset":
        check_readable(path)
    try:
        if fmt == "hf_dataset":
            yield from read_saved_dataset(path, split)
        elif fmt == "arrow":
            yield from read_arrow(path)
        elif fmt == "jsonl":
            yield from _read_jsonl(path, max_row_bytes)
        elif fmt == "json":
            yield from _read_json_array(path, max_row_bytes, records_path)
        elif fmt == "parquet":
            yield from _read_parquet(path)
        elif fmt in ("csv", "tsv"):
            yield from _read_delimited(path, "," if fmt == "csv" else "\t", max_row_bytes)
        else:
            raise SourceFileError(f"{path}: unsupported format {fmt!r}")
    except read_errors() as e:
        # not chained: the message carries the cause, and the CLI shows the innermost error's text
        raise SourceFileError(f"{path}: cannot read: {type(e).__name__}: {e}") from None


def csv_header(path: Path, fmt: str = "auto") -> list[str]:
    """The column names of a CSV/TSV file (for config checks), [] when it is empty."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    with open_decompressed(path) as f:
        line = f.readline().decode("utf-8-sig", errors="replace")
    return next(csv.reader([line], delimiter="," if fmt == "csv" else "\t"), [])


def _read_jsonl(path: Path, max_row_bytes: int) -> Iterator[tuple[int, dict | RowError]]:
    with open_decompressed(path) as f:
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
            text = text.rstrip("\r\n")  # the line end is no part of the row (an unterminated string ends here)
            try:
                record = json.loads(text)
            except (ValueError, RecursionError) as e:  # also too deep, too many digits
                yield lineno, RowError(lineno, "<row>", json_error_text(e), _excerpt(text))
                continue
            if not isinstance(record, dict):
                yield lineno, RowError(lineno, "<row>", f"expected a JSON object, got {type(record).__name__}", _excerpt(text))
                continue
            problem = record_problem(record) if may_hold_surrogates(text) else None
            yield lineno, RowError(lineno, *problem, _excerpt(text)) if problem else record


def _read_json_array(path: Path, max_row_bytes: int, records_path: str | None = None) -> Iterator[tuple[int, dict | RowError]]:
    from am_assets.ingest.jsondoc import json_document_rows  # it imports this module

    with open_decompressed(path) as f:
        raw = f.read()
    try:
        text, bad_bytes = raw.decode("utf-8-sig"), False
    except UnicodeDecodeError:  # bad bytes stay as lone surrogates: the rows holding them are rejected
        text, bad_bytes = raw.decode("utf-8-sig", errors="surrogateescape"), True
    if _is_json_lines(text):  # JSON lines under a .json name (e.g. MATH's math_test5000.json.gz)
        yield from _read_jsonl(path, max_row_bytes)
        return
    yield from json_document_rows(text, records_path, str(path), bad_bytes)


def _is_json_lines(text: str) -> bool:
    """An object followed by more on a later line: JSON lines, not one document."""
    start = len(text) - len(text.lstrip())
    if not text.startswith("{", start):
        return False
    try:
        _, end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        first_line = text[start:].split("\n", 1)
        return len(first_line) > 1 and first_line[1].lstrip().startswith("{")
    rest = text[end:]
    return bool(rest.strip()) and "\n" in rest[:len(rest) - len(rest.lstrip())]


def _read_parquet(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a corrupt footer
        raise SourceFileError(f"{path}: not a readable Parquet file: {e}") from e
    row = 0
    for batch in pf.iter_batches(batch_size=8192):
        try:
            records = batch.to_pylist()
        except (UnicodeDecodeError, ValueError):  # one bad value spoils the batch: go row by row
            records = [_parquet_row(batch, i) for i in range(batch.num_rows)]
        for record in records:
            row += 1
            yield row, RowError(row, *record) if isinstance(record, tuple) else record


def _parquet_row(batch, i: int) -> dict | tuple[str, str]:
    """One row of a batch, or (column, reason) for the first column whose value cannot be read."""
    out = {}
    for name, column in zip(batch.schema.names, batch.columns):
        try:
            out[name] = column.slice(i, 1).to_pylist()[0]
        except UnicodeDecodeError as e:
            return name, f"invalid UTF-8 in a string column (byte 0x{e.object[e.start]:02X} at {e.start})"
        except ValueError as e:
            return name, f"unreadable value: {e}"
    return out


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
    with open_decompressed(path) as f:
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
