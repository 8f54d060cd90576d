"""Every row accounted for. Each malformed kind sits between good rows in its own file (JSONL, JSON
lists and records_path objects, Parquet, CSV/TSV): every good row goes in, the bad row is in
rejected_rows with file, row, field and a readable error. Unreadable sources (missing, a directory,
a symlink loop, no permission, a corrupt gzip) fail only their own partition, with the path in the
message; config loading and source fingerprints never stop on them; empty sources warn."""

from __future__ import annotations

import gzip
import json
import os

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from am_assets.ingest.logic import ingest_source, source_fingerprint
from resources.config import CleaningConfig, FieldMapping, FileSource

MAPPING = FieldMapping(question="question", answer="answer")
DEEP = "[" * 10_000 + "]" * 10_000
DEEP_OBJ = '{"a":' * 10_000 + "1" + "}" * 10_000
BIG = "9" * 5_000


def good(tag: str, i: int) -> dict:
    return {"question": f"Good question {tag} {i}: what is {i} + 1?", "answer": str(i + 1)}


def _line(d: dict) -> bytes:
    return json.dumps(d).encode()


# ---------------------------------------------------------------- JSONL: (name, raw line, field, words)
JSONL = [
    ("lone high surrogate", b'{"question": "x \\ud800 y", "answer": "1"}', "question", "lone surrogate"),
    ("lone low surrogate", b'{"question": "x \\udc00", "answer": "1"}', "question", "lone surrogate"),
    ("surrogate in a nested unused field", b'{"question": "q?", "answer": "1", "meta": {"x": ["\\udfff"]}}',
     "meta.x.0", "lone surrogate"),
    ("surrogate in a key", b'{"question": "q?", "answer": "1", "\\ud834": 1}', "<row>", "lone surrogate"),
    ("10,000-deep list", b'{"question": "q?", "answer": "1", "x": ' + DEEP.encode() + b"}", "<row>",
     "nested too deeply"),
    ("10,000-deep objects", b'{"question": "q?", "answer": "1", "x": ' + DEEP_OBJ.encode() + b"}", "<row>",
     "nested too deeply"),
    ("5,000-digit integer", b'{"question": "q?", "answer": ' + BIG.encode() + b"}", "<row>", "4300 digits"),
    ("5,000-digit negative integer", b'{"question": "q?", "answer": -' + BIG.encode() + b"}", "<row>",
     "4300 digits"),
    ("NaN answer", b'{"question": "q?", "answer": NaN}', "answer", "not a finite number"),
    ("Infinity answer", b'{"question": "q?", "answer": -Infinity}', "answer", "not a finite number"),
    ("1e999 answer", b'{"question": "q?", "answer": 1e999}', "answer", "not a finite number"),
    ("unterminated string", b'{"question": "never closed', "<row>", "Unterminated string starting at column"),
    ("invalid escape", b'{"question": "bad \\x escape"}', "<row>", "Invalid \\escape"),
    ("raw control character", b'{"question": "tab\x01here"}', "<row>", "Invalid control character at column"),
    ("BOM in the middle", b"\xef\xbb\xbf" + _line(good("bom", 0)), "<row>", "malformed JSON"),
    ("overlong UTF-8", b'{"question": "\xc0\xaf"}', "<row>", "invalid UTF-8"),
    ("cut multibyte UTF-8", b'{"question": "euro \xe2\x82"}', "<row>", "invalid UTF-8"),
    ("UTF-16 line", '{"question": "q"}'.encode("utf-16-le"), "<row>", "malformed JSON"),
]

# ---------------------------------------------------------------- JSON documents: (name, bad element text, field, words)
JSON_LIST = [
    ("surrogate element", '{"question": "\\ud800", "answer": "1"}', "question", "lone surrogate"),
    ("deep element", DEEP, "<row>", "nested too deeply"),
    ("deep object element", DEEP_OBJ, "<row>", "nested too deeply"),
    ("5,000-digit element", '{"question": "q?", "answer": ' + BIG + "}", "<row>", "4300 digits"),
    ("missing closing brace", '{"question": "q?", "answer": "1"', "<row>", "malformed JSON"),
    ("missing comma inside", '{"question": "q?" "answer": "1"}', "<row>", "Expecting ',' delimiter"),
    ("empty element", "", "<row>", "Expecting value"),
    ("string element", '"just text"', "<row>", "expected a JSON object, got str"),
    ("null element", "null", "<row>", "expected a JSON object, got NoneType"),
    ("junk after element", '{"question": "q?", "answer": "1"} junk', "<row>", "unexpected 'junk"),
    ("single quotes", "{'question': 'q?'}", "<row>", "malformed JSON"),
    ("mismatched bracket", '{"question": "q?", "answer": [1}', "<row>", "malformed JSON"),
    ("unterminated string element", '{"question": "q?, "answer": "1"}', "<row>", "malformed JSON"),
]
BAD_BYTE_ELEMENT = ("invalid UTF-8 byte in an element", b'{"question": "caf\xff?", "answer": "1"}', "question",
                    "invalid UTF-8 (byte 0xFF)")


def _source(path, **kw) -> FileSource:
    return FileSource(name="src", kind="file", path=path, mapping=MAPPING, **kw)


def _check(path, rows, rejected, n_good, bad: list[tuple[int, str, str]], tag):
    assert rows.height == n_good, (tag, rejected.to_dicts())
    assert rejected.height == len(bad), (tag, rejected.to_dicts())
    got = {int(r["source_row"]): r for r in rejected.iter_rows(named=True)}
    for row, field, words in bad:
        r = got[row]
        assert r["field"] == field and words in r["error"], (tag, r)
        assert r["source_file"] == str(path) and r["source"] == "src"
        assert "at at" not in r["error"]


@pytest.mark.parametrize("name, raw, field, words", JSONL, ids=[c[0] for c in JSONL])
def test_jsonl_kind(tmp_path, name, raw, field, words):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join([_line(good("a", 1)), raw, _line(good("a", 2))]) + b"\n")
    rows, rejected = ingest_source(_source(path), CleaningConfig())
    _check(path, rows, rejected, 2, [(2, field, words)], name)


@pytest.mark.parametrize("wrapped", [False, True], ids=["list", "records_path"])
@pytest.mark.parametrize("name, element, field, words", JSON_LIST + [BAD_BYTE_ELEMENT],
                         ids=[c[0] for c in JSON_LIST + [BAD_BYTE_ELEMENT]])
def test_json_document_kind(tmp_path, name, element, field, words, wrapped):
    element = element if isinstance(element, bytes) else element.encode()
    items = b", ".join([_line(good("j", 1)), element, _line(good("j", 2)), _line(good("j", 3))])
    doc = b"[" + items + b"]"
    if wrapped:  # the rows inside an object, after other keys holding lists (they used to be taken)
        doc = b'{"version": "1.0", "tags": ["a", "b"], "data": ' + doc + b', "n": 4}'
    path = tmp_path / "x.json"
    path.write_bytes(doc)
    rows, rejected = ingest_source(_source(path, records_path="data" if wrapped else None), CleaningConfig())
    _check(path, rows, rejected, 3, [(2, field, words)], name)


def test_json_document_with_many_bad_elements(tmp_path):
    """All the kinds in one list: each bad element costs only itself."""
    parts, bad = [], []
    for i, (name, element, field, words) in enumerate(JSON_LIST + [BAD_BYTE_ELEMENT]):
        parts += [_line(good("m", i)), element if isinstance(element, bytes) else element.encode()]
        bad.append((2 * i + 2, field, words))
    parts.append(_line(good("m", 99)))
    path = tmp_path / "many.json.gz"
    path.write_bytes(gzip.compress(b"[\n" + b",\n".join(parts) + b"\n]"))
    rows, rejected = ingest_source(_source(path), CleaningConfig())
    _check(path, rows, rejected, len(bad) + 1, bad, "many")


@pytest.mark.parametrize("doc, words", [
    ({"version": 1, "tags": ["a"], "data": [{"question": "q?"}]}, "set the source's `records_path`"),
    ({"id1": {"question": "a?"}, "id2": {"question": "b?"}}, "an object with keys id1"),
    ("just a string", "expected a list of rows, found a str"),
    (42, "found a int"),
])
def test_json_document_that_is_not_a_list_is_one_clear_file_error(tmp_path, doc, words):
    from am_assets.ingest.readers import SourceFileError

    path = tmp_path / "obj.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SourceFileError) as e:
        ingest_source(_source(path), CleaningConfig())
    assert str(path) in str(e.value) and words in str(e.value)
    for records_path, found in (("data.0", "no key '0'"), ("version", "not a list of rows")):
        if isinstance(doc, dict) and "version" in doc:
            with pytest.raises(SourceFileError, match=found):
                ingest_source(_source(path, records_path=records_path), CleaningConfig())


# ---------------------------------------------------------------- Parquet


def _invalid_utf8_strings(values: list[bytes], kind=None) -> pa.Array:
    """A Parquet/Arrow string column holding bytes that are not UTF-8 (as other writers produce)."""
    kind = kind or pa.string()
    offsets = [0]
    for v in values:
        offsets.append(offsets[-1] + len(v))
    width = pa.int64() if kind == pa.large_string() else pa.int32()
    return pa.Array.from_buffers(kind, len(values),
                                 [None, pa.array(offsets, width).buffers()[1], pa.py_buffer(b"".join(values))])


def _g(i):
    return good("p", i)


def _q(i):
    return _g(i)["question"]


# (name, columns, mapping changes, field, words); the bad value is in row 2 of 3
PARQUET = [
    ("invalid UTF-8 in the question column",
     {"question": _invalid_utf8_strings([_q(1).encode(), b"caf\xff?", _q(2).encode()]), "answer": ["2", "1", "3"]},
     {}, "question", "invalid UTF-8"),
    ("invalid UTF-8 in an unused column",
     {"question": [_q(1), "q?", _q(2)], "answer": ["2", "1", "3"],
      "note": _invalid_utf8_strings([b"fine", b"\xfe\xfe", b"fine"])}, {}, "note", "invalid UTF-8"),
    ("invalid UTF-8 in a large_string column",
     {"question": _invalid_utf8_strings([_q(1).encode(), b"\xc3\x28?", _q(2).encode()], pa.large_string()),
      "answer": ["2", "1", "3"]}, {}, "question", "invalid UTF-8"),
    ("null question", {"question": [_q(1), None, _q(2)], "answer": ["2", "1", "3"]}, {}, "question", "missing"),
    ("NaN answer", {"question": [_q(1), "q?", _q(2)], "answer": [2.0, float("nan"), 3.0]}, {}, "answer",
     "not a finite number"),
    ("infinite answer", {"question": [_q(1), "q?", _q(2)], "answer": [2.0, float("-inf"), 3.0]}, {}, "answer",
     "not a finite number"),
    ("struct without the mapped field's value",
     {"q": [{"text": _q(1)}, {"text": None}, {"text": _q(2)}], "answer": ["2", "1", "3"]},
     {"question": "q.text"}, "q.text", "missing"),
    ("list shorter than the mapped index", {"qs": [[_q(1)], [], [_q(2)]], "answer": ["2", "1", "3"]},
     {"question": "qs.0"}, "qs.0", "missing"),
]


@pytest.mark.parametrize("name, columns, mapping, field, words", PARQUET, ids=[c[0] for c in PARQUET])
def test_parquet_kind(tmp_path, name, columns, mapping, field, words):
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table(columns), path)
    source = _source(path).model_copy(update={"mapping": MAPPING.model_copy(update=mapping)})
    rows, rejected = ingest_source(source, CleaningConfig())
    _check(path, rows, rejected, 2, [(2, field, words)], name)
    assert sorted(rows["question"].to_list()) == sorted([_q(1), _q(2)])


def test_parquet_bad_value_in_a_later_batch(tmp_path):
    """One bad value spoils pyarrow's whole batch; the reader goes row by row through that batch only."""
    n = 20_000
    values = [f"question number {i}?".encode() for i in range(n)]
    values[12_345] = b"bad \xff byte"
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"question": _invalid_utf8_strings(values), "answer": pa.array(["1"] * n)}), path)
    rows, rejected = ingest_source(_source(path), CleaningConfig())
    assert rows.height == n - 1 and rejected["source_row"].to_list() == ["12346"]


# ---------------------------------------------------------------- CSV / TSV: (name, raw line, field, words)
CSV = [
    ("too many fields", b"q?,1,extra", "<row>", "3 fields, the header has 2"),
    ("too few fields", b"lonely question?", "<row>", "1 fields, the header has 2"),
    ("invalid UTF-8 field", b"caf\xff?,1", "<row>", "invalid UTF-8"),
    ("oversized row", b"x" * 5_000 + b",1", "<row>", "over the 4000-byte limit"),
    ("lone surrogate escape as text stays text", None, None, None),
]


@pytest.mark.parametrize("delimiter", [",", "\t"], ids=["csv", "tsv"])
@pytest.mark.parametrize("name, raw, field, words", CSV, ids=[c[0] for c in CSV])
def test_delimited_kind(tmp_path, name, raw, field, words, delimiter):
    if raw is None:  # "\ud800" in a CSV is six characters of text, not an escape: a good row
        raw, field = b"\\ud800 what?,1", None
    raw = raw.replace(b",", delimiter.encode())
    g1, g2 = (f"{good('c', i)['question'].replace(',', '')}{delimiter}{i + 1}".encode() for i in (1, 2))
    path = tmp_path / ("x.csv" if delimiter == "," else "x.tsv")
    path.write_bytes(b"\n".join([f"question{delimiter}answer".encode(), g1, raw, g2]) + b"\n")
    rows, rejected = ingest_source(_source(path), CleaningConfig(max_row_bytes=4000))
    if field is None:
        assert rows.height == 3 and rejected.height == 0
        return
    _check(path, rows, rejected, 2, [(3, field, words)], name)  # line 3: after the header and a good row


def test_at_least_forty_kinds():
    kinds = len(JSONL) + 2 * (len(JSON_LIST) + 1) + len(PARQUET) + 2 * (len(CSV) - 1)
    assert kinds >= 40, kinds


# ---------------------------------------------------------------- whole sources


def _write_sources(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "good.jsonl").write_text("\n".join(json.dumps(good("g", i)) for i in range(3)) + "\n")
    (d / "wrapped.json").write_text(json.dumps({"version": "2", "tags": ["x", "y"],
                                                "data": [good("w", i) for i in range(4)]}))
    (d / "empty.jsonl").write_bytes(b"")
    (d / "blank.jsonl").write_text("  \n\n \t\n")
    (d / "nothing.jsonl.gz").write_bytes(gzip.compress(b""))
    (d / "header_only.csv").write_text("question,answer\n")
    (d / "corrupt.jsonl.gz").write_bytes(gzip.compress(b"\n".join(_line(good("z", i)) for i in range(200)))[:60])
    (d / "a_dir.jsonl").mkdir()
    (d / "loop.jsonl").symlink_to(d / "loop.jsonl")
    (d / "locked.jsonl").write_text(json.dumps(good("l", 0)) + "\n")
    os.chmod(d / "locked.jsonl", 0)
    sources = [{"name": n, "kind": "file", "path": f"data/{f}", "mapping": {"question": "question", "answer": "answer"},
                **extra} for n, f, extra in [
        ("good", "good.jsonl", {}), ("wrapped", "wrapped.json", {"records_path": "data"}),
        ("empty", "empty.jsonl", {}), ("blank", "blank.jsonl", {}), ("nothing", "nothing.jsonl.gz", {}),
        ("header_only", "header_only.csv", {}), ("corrupt", "corrupt.jsonl.gz", {}), ("a_dir", "a_dir.jsonl", {}),
        ("loop", "loop.jsonl", {}), ("locked", "locked.jsonl", {}), ("gone", "gone.jsonl", {})]]
    return sources, d


def test_bad_sources_fail_alone_and_empty_ones_warn(project, instance, tmp_path, capfd):
    import polars as pl

    from am_distill.cli.runner import MaterializationFailed, materialize_all
    from am_assets import source_versions

    sources, d = _write_sources(project.root)
    project.write({"shards": 1, "sources": sources})
    cfg = project.cfg()  # loads: no source file is opened, none stops it
    versions = source_versions(cfg)  # what the sensors ask every tick: no raise either
    assert set(versions) == {s["name"] for s in sources}
    defs = project.defs()
    with pytest.raises(MaterializationFailed) as e:
        materialize_all(defs, instance, select=["raw_queries"], log=lambda _: None)
    message = str(e.value)
    unreadable = {"corrupt": "corrupt.jsonl.gz", "a_dir": "a_dir.jsonl", "loop": "loop.jsonl",
                  "gone": "gone.jsonl"}
    if os.geteuid() != 0:  # root reads a chmod 000 file anyway
        unreadable["locked"] = "locked.jsonl"
    for name, file in unreadable.items():
        line = next(ln for ln in message.splitlines() if f"raw_queries [{name}]" in ln)
        assert str(d / file) in line, line
    assert str(d) in message.splitlines()[-1]  # the last line the CLI prints names a file
    lines = {name: next(ln for ln in message.splitlines() if f"[{name}]" in ln) for name in unreadable}
    assert "EOFError" in lines["corrupt"] and "symbolic links" in lines["loop"]
    # a folder is a source of its data files (a folder of shards); this one holds none
    assert "no data files" in lines["a_dir"] and "no such file" in lines["gone"]

    raw = project.lake().read("raw_queries")
    counts = dict(raw.group_by("source").len().iter_rows())
    assert counts.get("good") == 3 and counts.get("wrapped") == 4  # the good sources were built
    for name in ("empty", "blank", "nothing", "header_only"):
        mat = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_queries"), asset_partitions=[name]), limit=1).records[0]
        meta = mat.asset_materialization.metadata
        assert meta["empty_source"].value is True and "no rows" in meta["warning"].value, name
    assert "WARNING" in (log := capfd.readouterr().err) and "(an empty source)" in log  # the run log
    assert raw.filter(pl.col("source").is_in(["empty", "blank", "nothing", "header_only"])).height == 0


def test_fingerprint_of_an_unreadable_source_changes_when_it_is_fixed(tmp_path):
    path = tmp_path / "later.jsonl"
    src = _source(path)
    before = source_fingerprint(src)  # missing: no raise
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    assert source_fingerprint(_source(loop))
    path.write_text(json.dumps(good("f", 1)) + "\n")
    assert source_fingerprint(src) != before
