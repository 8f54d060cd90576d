"""CSV/TSV reading, JSON-number reference answers, and the multiple-choice field mappings (with the
config checks that catch a bad mapping before any run)."""

from __future__ import annotations

import gzip
import json

import pytest

from am_assets.dedup.bench_sources import load_benchmark
from am_assets.ingest.adapters import FieldError, adapt_am_40m, adapt_mapped
from am_assets.ingest.logic import ingest_source
from am_assets.ingest.readers import RowError, read_records
from resources.config import BenchmarkConfig, CleaningConfig, ConfigError, FieldMapping, FileSource, parse_config
from tests.conftest import shared

CSV_TEXT = ('id,problem,answer\n'
            '1,"What is 10 + 15?\nGive the number only.",025\n'
            '2,"Say ""hi"", then stop.",hi\n'
            '3,too,many,fields\n'
            '\n'
            '4,What is 3 * 9?,27\n')


@pytest.mark.parametrize("name, delimiter, packed", [("a.csv", ",", False), ("a.csv.gz", ",", True),
                                                     ("a.tsv", "\t", False), ("a.tsv.gz", "\t", True)])
def test_csv_and_tsv_stream_text_values_with_row_errors(tmp_path, name, delimiter, packed):
    text = CSV_TEXT if delimiter == "," else CSV_TEXT.replace(",", "\t")
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if packed else text.encode())
    got = list(read_records(path))
    records = [(n, r) for n, r in got if not isinstance(r, RowError)]
    errors = [r for _, r in got if isinstance(r, RowError)]
    assert [n for n, _ in records] == [2, 4, 7]  # the line each row starts on (row 1 spans two lines)
    assert records[0][1] == {"id": "1", "problem": "What is 10 + 15?\nGive the number only.", "answer": "025"}
    assert records[1][1]["problem"].replace("\t", ",") == 'Say "hi", then stop.'  # quoting, doubled quotes
    assert [(e.row, e.error) for e in errors] == [(5, "4 fields, the header has 3")]


def test_csv_invalid_utf8_and_oversized_rows_are_rejected_not_dropped(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"q,a\nfine,1\nbad \xff byte,2\n" + b"long," + b"x" * 300 + b"\nlast,3\n")
    got = list(read_records(path, max_row_bytes=200))
    assert [(n, r.error if isinstance(r, RowError) else r["q"]) for n, r in got] == [
        (2, "fine"), (3, "invalid UTF-8"), (4, "row is 306 bytes, over the 200-byte limit"), (5, "last")]


def test_reference_answers_of_any_json_scalar_type(tmp_path):
    path = tmp_path / "nums.jsonl"
    values = [27, 27.0, 1e-05, -3.5, "\\frac{1}{2}", True, [1, 2]]
    path.write_text("".join(json.dumps({"q": f"Question number {i}?", "a": v}) + "\n" for i, v in enumerate(values)))
    src = FileSource(name="nums", kind="file", path=path, category="math",
                     mapping=FieldMapping(question="q", answer="a"))
    df, rejected = ingest_source(src, CleaningConfig())
    assert df["reference_answer"].to_list() == ["27", "27.0", "0.00001", "-3.5", "\\frac{1}{2}"]
    assert rejected["field"].to_list() == ["a", "a"]
    assert "a boolean (True) is not an answer" in rejected["error"][0] and "got list" in rejected["error"][1]
    boxed = FieldMapping(question="q", answer="a", answer_format="boxed")  # a number is the final answer itself
    assert adapt_mapped({"q": "What is 3 * 9?", "a": 27}, boxed, "math")["reference_answer"] == "27"
    assert adapt_am_40m({"question": "What is 3 * 9?", "ground_truth": 27.0}, "math")["reference_answer"] == "27.0"


def test_27_point_0_equals_27_for_the_math_verifier():
    from am_assets.verify.math_worker import check

    assert check("27.0", "\\boxed{27}")["score"] == 1.0
    assert check("27", "\\boxed{27.0}")["score"] == 1.0
    assert check("27.0", "\\boxed{\\frac{54}{2}}")["score"] == 1.0


def test_benchmark_with_integer_answers_ingests_every_item():
    path = shared("competition_math/aime24_qwq.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert all(isinstance(r["answer"], int) for r in rows)
    bench, errors = load_benchmark(BenchmarkConfig(name="aime_int", path=path, category="math",
                                                   mapping=FieldMapping(question="prompt", answer="answer")))
    assert errors == [] and bench.height == len(rows) == 30
    assert bench["reference_answer"].to_list() == [str(r["answer"]) for r in rows]


def test_options_with_a_letter_or_an_index_keep_the_file_order(tmp_path):
    m = FieldMapping(question="q", options=["o1", "o2", "o3"], answer_letter="key")
    record = {"q": "Which is a halogen?", "o1": "neon", "o2": "fluorine", "o3": "sodium", "key": "(b)"}
    row = adapt_mapped(record, m, None)
    meta = json.loads(row["metadata"])["choices"]
    assert meta == {"options": ["neon", "fluorine", "sodium"], "answer": "B", "shuffle_seed": None}
    assert row["question"].endswith("(A) neon\n(B) fluorine\n(C) sodium") and row["reference_answer"] == "B"
    assert row["category"] == "other"  # a letter is no math answer; set `category` to say science
    mmlu = FieldMapping(question="question", options="choices", answer_index="answer")
    row = adapt_mapped({"question": "2 + 2 = ?", "choices": [3, 4, 5, 22], "answer": 1}, mmlu, "math")
    assert json.loads(row["metadata"])["choices"]["options"] == ["3", "4", "5", "22"] and row["reference_answer"] == "B"
    csv_json = FieldMapping(question="q", options="opts", answer_letter="key")
    assert adapt_mapped({"q": "Pick one.", "opts": '["x", "y"]', "key": "A"}, csv_json, None)["reference_answer"] == "A"


@pytest.mark.parametrize("record, mapping, field, message", [
    ({"q": "Which?", "o": ["a", "b"], "k": "C"}, {"options": "o", "answer_letter": "k"}, "k", "only 2 options"),
    ({"q": "Which?", "o": ["a", "b"], "k": "1"}, {"options": "o", "answer_letter": "k"}, "k", "answer_index"),
    ({"q": "Which?", "o": ["a", "a"], "k": "A"}, {"options": "o", "answer_letter": "k"}, "o", "same text"),
    ({"q": "Which?", "o": "not json", "k": "A"}, {"options": "o", "answer_letter": "k"}, "o", "list of options"),
    ({"q": "Which?", "c": "a", "w": ""}, {"correct": "c", "incorrect": ["w"]}, "w", "empty option"),
    ({"q": "Which?", "c": True, "w": "b"}, {"correct": "c", "incorrect": ["w"]}, "c", "boolean"),
])
def test_bad_choice_rows_name_the_field(record, mapping, field, message):
    with pytest.raises(FieldError) as e:
        adapt_mapped(record, FieldMapping(question="q", **mapping), None)
    assert e.value.field == field and message in e.value.message


@pytest.mark.parametrize("mapping, message", [
    ({"options": ["a", "b"]}, "exactly one of `answer_letter` or `answer_index`"),
    ({"correct": "c"}, "`correct` needs `incorrect`"),
    ({"answer": "a", "correct": "c", "incorrect": ["w"]}, "exclude each other"),
    ({"options": "o", "answer_letter": "k", "correct": "c", "incorrect": ["w"]}, "not both"),
    ({"answer_letter": "k"}, "needs `options`"),
])
def test_bad_choice_mapping_fails_config_validation(tmp_path, mapping, message):
    (tmp_path / "f.csv").write_text("q,c\n")
    data = {"sources": [{"name": "s", "kind": "file", "path": "f.csv", "mapping": {"question": "q", **mapping}}]}
    with pytest.raises(ConfigError, match="sources.0.file.mapping") as e:
        parse_config(data, tmp_path / "pipeline.yaml")
    assert message in str(e.value)


def test_validate_catches_mapped_columns_missing_from_a_csv_header(project, tmp_path):
    from am_distill.cli.main import main

    (tmp_path / "mc.csv").write_text("Question,Correct Answer,Wrong 1,Wrong 2\nWhich?,x,y,z\n")
    mapping = {"question": "Question", "correct": "Correct Answer", "incorrect": ["Wrong 1", "Wrong2"]}
    path = project.write({"sources": [{"name": "mc", "kind": "file", "path": "mc.csv", "mapping": mapping}],
                          "benchmarks": [{"name": "gp", "path": "mc.csv", "layout": "gpqa_csv"}]})
    with pytest.raises(SystemExit) as e:
        main(["-c", str(path), "validate"])
    text = str(e.value)
    assert "mc: mapping.incorrect.1: no column 'Wrong2'" in text
    assert "gp: mapping.incorrect.0: no column 'Incorrect Answer 1'" in text


def test_gpqa_preset_reads_a_gzipped_csv(tmp_path):
    header = "Record ID,Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\n"
    rows = "".join(f"rec{i},Which particle is a lepton? (variant {i}),electron,proton,neutron,pion\n" for i in range(5))
    path = tmp_path / "gpqa_diamond.csv.gz"
    path.write_bytes(gzip.compress((header + rows).encode()))
    bench, errors = load_benchmark(BenchmarkConfig(name="gpqa", path=path, layout="gpqa_csv"))
    assert errors == [] and bench["item_id"].to_list() == [f"rec{i}" for i in range(5)]
    assert set(bench["category"]) == {"science"}
