"""Pass rate, CV and difficulty levels on constructed verification outcomes (the functions the asset uses)."""

import json
import math

import polars as pl
import pytest

from am_assets.difficulty.logic import (
    coefficient_of_variation, difficulty_table, pass_rate_column, teacher_order)

THRESHOLDS = {"math": 0.99, "code": 0.99, "if": 0.99, "science": 4.99, "other": 0.7}


def outcomes(rows):
    """rows: (query_id, category, teacher, [scores...]) -> verification_outcomes-like frame."""
    out = []
    for qid, cat, teacher, scores in rows:
        for s in scores:
            status, score = (s if isinstance(s, tuple) else ("ok", s))
            out.append({"query_id": qid, "category": cat, "teacher": teacher, "verify_score": score, "status": status})
    return pl.DataFrame(out, schema={"query_id": pl.String, "category": pl.String, "teacher": pl.String,
                                     "verify_score": pl.Float64, "status": pl.String})


def grade(rows, teachers=("weak", "mid", "strong"), reference="strong", ddof=1):
    return difficulty_table(outcomes(rows).lazy(), teachers=list(teachers), reference=reference,
                            thresholds=THRESHOLDS, ddof=ddof).collect().sort("query_id")


def test_worked_example_from_the_paper():
    scores = [0.9, 0.1, 0.7, 0.3, 0.5]
    cv = coefficient_of_variation(scores, ddof=1)
    assert cv == pytest.approx(0.632, abs=1e-3)  # std ~0.316 / mean 0.5
    df = grade([("q1", "other", "strong", scores)], teachers=["strong"])
    assert df["ref_std"][0] == pytest.approx(0.316, abs=1e-3)
    assert df["cv"][0] == pytest.approx(cv)
    # the 1/n formula the paper writes gives 0.57: ddof is configurable
    assert coefficient_of_variation(scores, ddof=0) == pytest.approx(0.566, abs=1e-3)


def test_cv_edge_cases():
    assert coefficient_of_variation([0.0, 0.0, 0.0, 0.0]) == 0.0  # mean 0: defined as 0
    assert coefficient_of_variation([1.0]) is None  # n=1 with ddof=1: undefined
    assert coefficient_of_variation([1.0], ddof=0) == 0.0
    assert coefficient_of_variation([1.0, 1.0, 1.0, 1.0]) == 0.0
    # binary scores, n=4: any mix of passes and fails gives CV >= 0.577 (papers.md section 6)
    for k in (1, 2, 3):
        assert coefficient_of_variation([1.0] * k + [0.0] * (4 - k)) >= 0.577 - 1e-9


def test_pass_rates_levels_and_counts():
    df = grade([
        ("easy", "math", "weak", [1, 1, 0, 1]), ("easy", "math", "mid", [1, 1, 1, 1]), ("easy", "math", "strong", [1] * 4),
        ("med", "math", "weak", [1, 0, 0, 0]), ("med", "math", "strong", [1, 1, 0, 1]),
        ("midonly", "code", "weak", [0.5] * 4), ("midonly", "code", "mid", [1, 0, 0, 0]), ("midonly", "code", "strong", [0.2] * 4),
        ("hard", "science", "weak", [4.0] * 4), ("hard", "science", "mid", [4.5] * 4), ("hard", "science", "strong", [5, 3, 5, 2]),
        ("none", "other", "weak", [0.1] * 4), ("none", "other", "strong", [0.7] * 4),  # 0.7 is not > 0.7
    ])
    by = {r["query_id"]: r for r in df.to_dicts()}
    assert by["easy"][pass_rate_column("weak")] == 0.75 and by["easy"]["level"] == "easy"
    assert by["med"][pass_rate_column("weak")] == 0.25 and by["med"]["level"] == "medium"
    assert by["med"][pass_rate_column("mid")] is None and by["med"]["samples_mid"] == 0  # no samples: null rate
    assert by["midonly"]["level"] == "medium" and by["midonly"]["solved_by"] == "mid"
    assert by["hard"]["level"] == "hard" and by["hard"][pass_rate_column("strong")] == 0.5  # science: > 4.99
    assert by["none"]["level"] == "unsolved" and by["none"]["solved_by"] is None
    assert by["easy"]["n_samples"] == 12 and by["easy"]["ref_samples"] == 4
    assert by["hard"]["max_score"] == 5.0 and by["hard"]["ref_max_score"] == 5.0
    assert json.loads(by["med"]["pass_rates"]) == {"weak": 0.25, "mid": None, "strong": 0.75}
    assert by["easy"]["cv"] == 0.0
    assert by["med"]["cv"] == pytest.approx(math.sqrt(0.25) / 0.75)  # [1,1,0,1]: std 0.5, mean 0.75
    assert by["hard"]["threshold"] == 4.99


def test_unscored_statuses_leave_the_denominator():
    df = grade([("q", "math", "strong", [1.0, ("timeout", None), ("verifier_error", 0.0), ("unparseable", None)])],
               teachers=["strong"])
    row = df.row(0, named=True)
    assert row["samples_strong"] == 2 and row["n_unscored"] == 2  # ok + unparseable (score 0) are verdicts
    assert row[pass_rate_column("strong")] == 0.5


def test_single_teacher_levels_and_other_teachers_ignored():
    df = grade([("a", "math", "only", [1, 1, 1, 0]), ("b", "math", "only", [1, 0, 0, 0]),
                ("b", "math", "removed", [1, 1, 1, 1])], teachers=["only"], reference="only")
    assert df["level"].to_list() == ["easy", "medium"]
    assert "pass_rate_removed" not in df.columns and df["n_samples"].to_list() == [4, 4]


def test_teacher_order():
    assert teacher_order(["a", "b", "c"]) == ["a", "b", "c"]
    assert teacher_order(["a", "b", "c"], weak="b", reference="a") == ["b", "c", "a"]
    assert teacher_order(["x"]) == ["x"]
    with pytest.raises(ValueError, match="difficulty.reference_teacher"):
        teacher_order(["a"], reference="zz")


def test_partial_thresholds_keep_the_papers_values():
    df = difficulty_table(outcomes([("q", "math", "t", [0.8, 1.0]), ("s", "science", "t", [4.6, 4.0])]).lazy(),
                          teachers=["t"], reference="t", thresholds={"science": 4.5}).collect().sort("query_id")
    assert df["threshold"].to_list() == [0.99, 4.5]
    assert df[pass_rate_column("t")].to_list() == [0.5, 0.5]
