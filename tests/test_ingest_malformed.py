"""Bad input: every broken row lands in rejected_rows with file, row, field and a clear error;
the good rows around it still go through; a missing file fails naming its path."""

import gzip
import json

import pytest

from am_assets.ingest.logic import ingest_source
from am_assets.ingest.readers import SourceFileError
from resources.config import CleaningConfig, FieldMapping, FileSource

GOOD = {"question": "What is 6 times 7?", "answer": "6*7 = 42\n#### 42", "tests": ["assert f(1) == 1"], "cat": "math"}
MAPPING = FieldMapping(question="question", answer="answer", answer_format="gsm8k", test_cases="tests", category="cat")


def _bad(**changes):
    rec = {**GOOD, **changes}
    return json.dumps({k: v for k, v in rec.items() if v is not ...}).encode()


# (name, raw line, expected field, words in the error)
CASES = [
    ("truncated json", b'{"question": "What is', "<row>", "malformed JSON"),
    ("trailing garbage", b'{"question": "What is 1?"} trailing', "<row>", "malformed JSON"),
    ("single-quoted dict", b"{'question': 'What is 1?'}", "<row>", "malformed JSON"),
    ("array row", b"[1, 2, 3]", "<row>", "expected a JSON object, got list"),
    ("string row", b'"just a string"', "<row>", "expected a JSON object, got str"),
    ("number row", b"42", "<row>", "expected a JSON object, got int"),
    ("null row", b"null", "<row>", "expected a JSON object, got NoneType"),
    ("invalid utf-8", b'{"question": "caf\xe9 \xff\xfe"}', "<row>", "invalid UTF-8"),
    ("oversized row", _bad(question="x" * 5000), "<row>", "over the 4000-byte limit"),
    ("missing question", _bad(question=...), "question", "missing"),
    ("null question", _bad(question=None), "question", "missing"),
    ("numeric question", _bad(question=12), "question", "expected a string, got int"),
    ("list question", _bad(question=["a"]), "question", "expected a string, got list"),
    ("object question", _bad(question={"text": "a"}), "question", "expected a string, got dict"),
    ("boolean question", _bad(question=True), "question", "expected a string, got bool"),
    ("missing answer", _bad(answer=...), "answer", "missing"),
    ("object answer", _bad(answer={"v": 1}), "answer", "expected a string or a number, got dict"),
    ("boolean answer", _bad(answer=True), "answer", "a boolean (True) is not an answer"),
    ("answer without ####", _bad(answer="it is 42"), "answer", "no final answer found"),
    ("tests not json", _bad(tests="[assert f(1)"), "tests", "not valid JSON"),
    ("tests wrong type", _bad(tests=5), "tests", "expected a list or an object, got int"),
    ("tests with non-strings", _bad(tests=[1, 2]), "tests", "must hold strings"),
    ("stdio length mismatch", _bad(tests={"inputs": ["1"], "outputs": []}), "tests", "differ in length"),
    ("unknown test layout", _bad(tests={"foo": 1}), "tests", "unknown test layout"),
    ("unknown category", _bad(cat="poetry"), "cat", "unknown category 'poetry'"),
    ("category wrong type", _bad(cat=3), "cat", "expected a string, got int"),
]


def _source(path, **kw):
    return FileSource(name="bad", kind="file", path=path, mapping=MAPPING, **kw)


def test_each_malformed_kind_is_rejected_with_a_clear_error(tmp_path):
    assert len(CASES) >= 20
    lines = [json.dumps(GOOD).encode()]
    for _, raw, _, _ in CASES:
        lines += [raw, json.dumps({**GOOD, "question": f"Good question number {len(lines)}?"}).encode()]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    rows, rejected = ingest_source(_source(path), CleaningConfig(max_row_bytes=4000))

    assert rows.height == 1 + len(CASES)  # every good row went through
    assert rejected.height == len(CASES)  # and nothing was lost
    by_line = {int(r["source_row"]): r for r in rejected.iter_rows(named=True)}
    for i, (name, _, field, words) in enumerate(CASES):
        line = 2 + 2 * i
        r = by_line[line]
        assert r["field"] == field, (name, r)
        assert words in r["error"], (name, r)
        assert r["source_file"] == str(path) and r["source"] == "bad"


@pytest.mark.parametrize("layout, record, field, words", [
    ("am_1.4m", {"conversation": []}, "messages", "missing"),
    ("am_1.4m", {"messages": "hi"}, "messages", "non-empty list"),
    ("am_1.4m", {"messages": [{"role": "assistant", "content": "x"}]}, "messages", "no message with role 'user'"),
    ("am_1.4m", {"messages": [{"role": "user", "content": "Hello there?", "info": "x"}]}, "messages.0.info", "expected an object"),
    ("am_40m", {"question": "Say hi in caps.", "instruction_constrain": '[{"kwargs": {}}]'}, "instruction_constrain", "list of"),
    ("am_40m", {"answer": "x"}, "question", "missing"),
])
def test_layout_specific_errors(tmp_path, layout, record, field, words):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(record) + "\n")
    src = FileSource(name="x", kind="file", path=path, layout=layout)
    rows, rejected = ingest_source(src, CleaningConfig())
    assert rows.height == 0 and rejected.height == 1
    assert rejected["field"][0] == field and words in rejected["error"][0]


def test_gzip_jsonl_and_bom_and_blank_lines(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n\n" + json.dumps({**GOOD, "question": "What is 1+1?"}).encode() + b"\n")
    rows, rejected = ingest_source(_source(path), CleaningConfig())
    assert rows.height == 2 and rejected.height == 0
    assert rows["source_row"].to_list() == ["1", "3"]  # line numbers, blank line skipped


def test_missing_and_unreadable_files_fail_naming_the_path(tmp_path):
    missing = tmp_path / "gone.jsonl"
    with pytest.raises(SourceFileError, match=str(missing)):
        ingest_source(_source(missing), CleaningConfig())
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(b"\x1f\x8b" + b"not really gzip")
    with pytest.raises(SourceFileError, match="corrupt.jsonl.gz"):
        ingest_source(_source(corrupt), CleaningConfig())
    pq = tmp_path / "bad.parquet"
    pq.write_bytes(b"PAR1 nonsense")
    with pytest.raises(SourceFileError, match="bad.parquet"):
        ingest_source(_source(pq), CleaningConfig())


def test_parquet_source(tmp_path):
    import polars as pl

    path = tmp_path / "x.parquet"
    pl.DataFrame({"question": ["What is 1+1?", None], "answer": ["#### 2", "#### 3"],
                  "tests": [None, None], "cat": ["math", "math"]}).write_parquet(path)
    rows, rejected = ingest_source(_source(path), CleaningConfig())
    assert rows.height == 1 and rejected.height == 1 and rejected["source_row"][0] == "2"
