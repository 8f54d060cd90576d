"""Adapters and cleaning rules, one behaviour per case."""

import json

import polars as pl
import pytest

from am_assets.ingest.adapters import (
    FieldError,
    adapt_am_1_4m,
    adapt_am_40m,
    adapt_mapped,
    humaneval_rows,
    last_boxed,
    reasoning_gym_rows,
)
from am_assets.ingest.logic import clean_queries, drop_counts
from am_assets.core.schema import normalize_text, query_id
from resources.config import CleaningConfig, FieldMapping


def test_query_id_is_stable_under_case_and_whitespace():
    assert query_id("What is  2+2?\n") == query_id("what is 2+2?")
    assert query_id("What is 2+3?") != query_id("What is 2+2?")
    assert normalize_text("Ｆｕｌｌ\twidth") == "full width"


@pytest.mark.parametrize("text, expected", [
    (r"so \boxed{42}.", "42"),
    (r"\boxed{1} then \boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"\fbox{x^2}", "x^2"),
    (r"no box", None),
    (r"\boxed{unbalanced", None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_mapped_gsm8k():
    row = adapt_mapped({"question": "Tom has 3 apples...", "answer": "3+4=7\n#### 1,007"},
                       FieldMapping(answer="answer", answer_format="gsm8k"), "math")
    assert row["reference_answer"] == "1007" and row["category"] == "math"


def test_mapped_math_boxed_and_nested_path():
    row = adapt_mapped({"data": {"problem": "Find x."}, "solution": r"Thus \boxed{\sqrt{2}}"},
                       FieldMapping(question="data.problem", answer="solution", answer_format="boxed"), None)
    assert row["question"] == "Find x." and row["reference_answer"] == r"\sqrt{2}"
    assert row["category"] == "math"  # inferred from having a reference answer


def test_mapped_mbpp_tests_become_asserts():
    row = adapt_mapped({"text": "Write f.", "test_list": ["assert f(1) == 2"], "task_id": 7},
                       FieldMapping(question="text", test_cases="test_list", id="task_id"), None)
    assert json.loads(row["test_cases"]) == {"type": "asserts", "setup": "", "asserts": ["assert f(1) == 2"]}
    assert row["category"] == "code" and row["source_row"] == "7"


def test_am_1_4m_layout():
    rec = {"messages": [
        {"role": "user", "content": "Sum 1..10?", "info": {"source": "MetaMathQA", "reference_answer": "55", "test_case": None}},
        {"role": "assistant", "content": "<think>..</think><answer>55</answer>", "info": {"source": "am-0309"}},
    ]}
    row = adapt_am_1_4m(rec, None)
    assert row["question"] == "Sum 1..10?" and row["reference_answer"] == "55" and row["category"] == "math"
    assert json.loads(row["metadata"])["info_source"] == "MetaMathQA"


def test_am_1_4m_test_case_struct():
    rec = {"messages": [{"role": "user", "content": "Write add.", "info": {
        "test_case": {"test_code": "from solution import add\ndef test():\n    assert add(1,2)==3", "test_entry_point": "add"}}}]}
    row = adapt_am_1_4m(rec, None)
    assert json.loads(row["test_cases"])["type"] == "test_code" and row["category"] == "code"


def test_am_40m_layout():
    rec = {"question": "Write in all caps: hi", "answer": "<think>x</think><answer>HI</answer>", "category": "instruction follow",
           "ground_truth": None, "test_case": None,
           "instruction_constrain": json.dumps({"instruction_id_list": ["change_case:english_capital"], "kwargs": [{}]})}
    row = adapt_am_40m(rec, None)
    assert row["category"] == "if"
    assert json.loads(row["instruction_constraints"]) == [{"id": "change_case:english_capital", "kwargs": {}}]


def test_am_40m_stdio_tests():
    rec = {"question": "Read n, print 2n.", "category": "code", "test_case": json.dumps({"inputs": ["2\n"], "outputs": ["4\n"]})}
    tests = json.loads(adapt_am_40m(rec, None)["test_cases"])
    assert tests == {"type": "stdio", "cases": [{"input": "2\n", "output": "4\n"}]}


def test_reasoning_gym_rows_have_exact_answers():
    rows = list(reasoning_gym_rows(["basic_arithmetic"], count=5, seed=1, default_category=None))
    assert len(rows) == 5 and all(r["reference_answer"] for r in rows)
    assert rows[0]["category"] == "math" and rows[0]["source_row"] == "basic_arithmetic:0"
    again = list(reasoning_gym_rows(["basic_arithmetic"], count=5, seed=1, default_category=None))
    assert [r["question"] for r in rows] == [r["question"] for r in again]  # seeded


def test_humaneval_rows_come_from_the_package():
    rows = list(humaneval_rows())
    assert len(rows) == 164
    t = json.loads(rows[0]["test_cases"])
    assert t["type"] == "check" and t["entry_point"] == "has_close_elements" and "def check(candidate)" in t["test"]


def _clean(questions, **cfg):
    df = pl.DataFrame({"question": questions, "query_id": [query_id(q) if q else "q-none" for q in questions]})
    return clean_queries(df, CleaningConfig(**cfg))["drop_reason"].to_list()


@pytest.mark.parametrize("question, reason", [
    ("What is the sum of the first 100 positive integers?", None),
    ("", "empty_or_incomplete"),
    ("   ", "empty_or_incomplete"),
    ("Compute the value of x such that...", "empty_or_incomplete"),
    ("See https://example.com/problem for details, then solve.", "contains_url"),
    ("Visit www.example.org and count the links.", "contains_url"),
    ("Using the figure below, find the area of the triangle.", "refers_to_media"),
    ("As shown in the table, what is the total revenue?", "refers_to_media"),
    ("Describe ![plot](img.png) in words please.", "refers_to_media"),
    ("Compute the area of the region shown in Figure 3 above.", "refers_to_media"),
    ("求解方程 x平方加一等于零的所有复数根是什么", "unicode_ratio"),
    ("Draw it: [asy] draw((0,0)--(1,1)); [/asy] What is the slope?", None),
    # the figure or table is inline, so nothing is missing
    ("In the diagram below, find x. [asy] draw((0,0)--(1,1)); [/asy]", None),
    ("The table below lists scores.\n\\begin{tabular}{cc} a & 1 \\end{tabular}\nWhich is largest?", None),
    ("From the table below, who won?\n| name | votes |\n|---|---|\n| A | 3 |", None),
])
def test_clean_rules(question, reason):
    assert _clean([question]) == [reason]


def test_clean_length_and_duplicates():
    assert _clean(["x" * 50], max_chars=40) == ["too_long"]
    assert _clean(["What is 2 + 2?", "what is 2 + 2?", "What is 3 + 3?"]) == [None, "duplicate", None]
    assert _clean(["ÀÉÎÕÜ and some ascii text here"], max_unicode_ratio=0.1) == ["unicode_ratio"]


def test_drop_counts_name_every_rule():
    df = pl.DataFrame({"question": ["What is 2 + 2?", "What is 2 + 2?", ""], "query_id": ["a", "a", "b"]})
    counts = drop_counts(clean_queries(df, CleaningConfig()))
    assert counts["duplicate"] == 1 and counts["empty_or_incomplete"] == 1 and counts["contains_url"] == 0


def test_field_error_names_field():
    with pytest.raises(FieldError) as e:
        adapt_mapped({"q": 3}, FieldMapping(question="q"), None)
    assert e.value.field == "q" and "expected a string, got int" in str(e.value)
