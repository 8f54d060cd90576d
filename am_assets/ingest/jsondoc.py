"""The rows of a .json document: a list of rows, or an object holding them at `records_path`.

A well-formed document is parsed in one go. When that fails (a bad byte, a 10,000-deep value, a
5,000-digit number, a broken element), the rows array is walked element by element so that each bad
element becomes one RowError and the rest still go in. Anything that is not a list of rows (an
object without `records_path`, a path that holds no list) is one SourceFileError naming the path
and what was found there.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

from am_assets.ingest.readers import (RowError, SourceFileError, _excerpt, json_error_text, may_hold_surrogates,
                                      record_problem)

_WS = re.compile(r"\s*")
# strings whole (so brackets inside them do not count), else single structural characters
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.S)
_NEXT_ROW = re.compile(r",\s*\{")
_MISSING = object()


def json_document_rows(text: str, records_path: str | None, where: str,
                       bad_bytes: bool = False) -> Iterator[tuple[int, dict | RowError]]:
    """(row number, record | RowError) for the rows of a JSON document (`where` names the file).
    `bad_bytes`: the text was decoded with surrogateescape (invalid UTF-8 shows as U+DC80..U+DCFF)."""
    if not text.strip():
        return  # an empty document has no rows (the asset warns about empty sources)
    check = bad_bytes or may_hold_surrogates(text)  # else no text in it can be invalid
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = _MISSING
    if data is not _MISSING:
        for i, record in enumerate(_rows_at(data, records_path, where), start=1):
            yield i, _checked(i, record, check, bad_bytes)
        return
    yield from _tolerant_rows(text, _rows_start(text, records_path, where), check, bad_bytes)


def _checked(row: int, record: Any, check: bool, bad_bytes: bool) -> dict | RowError:
    if not isinstance(record, dict):
        return RowError(row, "<row>", f"expected a JSON object, got {type(record).__name__}", _dumped(record))
    problem = record_problem(record, bad_bytes) if check else None
    return RowError(row, *problem, _dumped(record)) if problem else record


def _dumped(value: Any) -> str:
    try:
        return json.dumps(value, default=str)[:200]  # ASCII: lone surrogates come out escaped
    except (ValueError, RecursionError):
        return ""


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        keys = ", ".join(f"{k} ({_kind(v)})" for k, v in list(value.items())[:8])
        return f"an object with keys {keys}" + (", ..." if len(value) > 8 else "") if value else "an empty object"
    return "null" if value is None else f"a {type(value).__name__}"


def _rows_at(data: Any, records_path: str | None, where: str) -> list:
    if records_path:
        cur = data
        for part in records_path.split("."):
            if not isinstance(cur, dict) or part not in cur:
                raise SourceFileError(f"{where}: records_path {records_path!r}: no key {part!r} in "
                                      f"{_kind(cur)}")
            cur = cur[part]
        if not isinstance(cur, list):
            raise SourceFileError(f"{where}: records_path {records_path!r} holds {_kind(cur)}, not a list of rows")
        return cur
    if isinstance(data, list):
        return data
    hint = "; set the source's `records_path` to the key that holds the rows" if isinstance(data, dict) else ""
    raise SourceFileError(f"{where}: expected a list of rows, found {_kind(data)}{hint}")


# ---------------------------------------------------------------- the walk when the document does not parse


def _skip_ws(text: str, i: int) -> int:
    return _WS.match(text, i).end()


def _skip_value(text: str, i: int) -> int:
    """End of the (possibly malformed) value at i: the next ',' ']' or '}' outside any nesting
    (iterative, so no depth is too deep)."""
    depth = 0
    for m in _TOKEN.finditer(text, i):
        tok = m.group()
        if tok in "[{":
            depth += 1
        elif tok in "]}":
            if depth == 0:
                return m.start()
            depth -= 1
        elif tok == "," and depth == 0:
            return m.start()
    return len(text)


def _expect(text: str, i: int, char: str, where: str, what: str) -> int:
    i = _skip_ws(text, i)
    if text[i:i + 1] != char:
        found = repr(text[i:i + 20]) if i < len(text) else "the end of the file"
        raise SourceFileError(f"{where}: not valid JSON before the rows: expected {what} at character {i}, "
                              f"found {found}")
    return i + 1


def _rows_start(text: str, records_path: str | None, where: str) -> int:
    """Index just after the '[' that opens the rows (top level, or at records_path)."""
    i = 0
    for part in (records_path.split(".") if records_path else []):
        i = _expect(text, i, "{", where, f"an object holding {part!r}")
        while True:
            i = _skip_ws(text, i)
            try:
                key, i = json.JSONDecoder().raw_decode(text, i)
            except ValueError:
                raise SourceFileError(f"{where}: records_path {records_path!r}: no key {part!r} "
                                      f"(the object ends or breaks at character {i})") from None
            i = _expect(text, i, ":", where, "':'")
            if key == part:
                break
            i = _skip_ws(text, _skip_value(text, _skip_ws(text, i)))
            if text[i:i + 1] != ",":
                raise SourceFileError(f"{where}: records_path {records_path!r}: no key {part!r} in the object")
            i += 1
    i = _skip_ws(text, i)
    if text[i:i + 1] == "{" and not records_path:
        raise SourceFileError(f"{where}: expected a list of rows, found an object (not valid JSON as a whole); "
                              "set the source's `records_path` to the key that holds the rows")
    return _expect(text, i, "[", where, "'[' (a list of rows)")


def _resync(text: str, i: int) -> int:
    """Where the next row starts after a broken one (its brackets may never balance): the first ', {'
    whose object parses and is followed by ',' or ']' (else the end of the text)."""
    decoder = json.JSONDecoder()
    for m in _NEXT_ROW.finditer(text, i + 1):
        try:
            record, end = decoder.raw_decode(text, m.end() - 1)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict) and text[_skip_ws(text, end):][:1] in (",", "]"):
            return m.start()
    return len(text)


def _tolerant_rows(text: str, i: int, check: bool, bad_bytes: bool) -> Iterator[tuple[int, dict | RowError]]:
    decoder = json.JSONDecoder()
    row, n, last_ok = 0, len(text), True
    while True:
        i = _skip_ws(text, i)
        if i >= n:
            if last_ok:  # cut off after a complete row: rows may be missing, say so
                yield row + 1, RowError(row + 1, "<row>", "the file ends before the list of rows is closed")
            return
        if text[i] in "]}":  # the list ends (a '}' closes it wrongly, but no row is left after it)
            return
        row += 1
        try:
            record, end = decoder.raw_decode(text, i)
            item = _checked(row, record, check, bad_bytes)
        except (ValueError, RecursionError) as e:
            # where it ends: its brackets, unless they never balance in time; then the next row that parses
            end = min(_skip_value(text, i), _resync(text, i))
            item = RowError(row, "<row>", json_error_text(e, i), _excerpt(text[i:end]))
        end = _skip_ws(text, end)
        if end < n and text[end] not in ",]":  # junk after the value (a missing comma)
            stop = max(_skip_value(text, end), end + 1)  # always move on
            if not isinstance(item, RowError):
                item = RowError(row, "<row>", f"malformed JSON: unexpected {_excerpt(text[end:end + 20])!r} "
                                "after the value", _excerpt(text[i:stop]))
            end = _skip_ws(text, stop)
        yield row, item
        last_ok = not isinstance(item, RowError)
        i = end + 1 if text[end:end + 1] == "," else end
