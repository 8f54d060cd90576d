"""pass@k estimator, per-item and benchmark scores, and the base-vs-trained comparison (pure logic)."""

import json
from math import comb

import polars as pl
import pytest

from am_assets.evaluate.logic import eval_answer, item_table, summary_row
from am_assets.evaluate.passk import mean_pass_at_k, pass_at_k, report_ks
from am_assets.evaluate.report import comparison, comparison_markdown, comparison_png, regressions


@pytest.mark.parametrize("n,c,k,expected", [
    (4, 0, 1, 0.0), (4, 4, 1, 1.0), (4, 1, 1, 0.25), (4, 2, 1, 0.5),
    (4, 1, 2, 0.5),          # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (4, 2, 2, 5 / 6),        # 1 - C(2,2)/C(4,2) = 1 - 1/6
    (4, 1, 4, 1.0), (4, 0, 4, 0.0),
    (16, 3, 4, 1 - comb(13, 4) / comb(16, 4)),   # = 1 - 715/1820
    (5, 3, 3, 1.0),          # n - c < k: any 3 draws include a correct one
    (10, 1, 5, 0.5),
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="n=4 c=5"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="n=2 k=4"):
        pass_at_k(2, 1, 4)


def test_report_ks_and_mean():
    assert report_ks(1) == [1] and report_ks(4) == [1, 2, 4] and report_ks(16) == [1, 2, 4, 8, 16] and report_ks(6) == [1, 2, 4, 6]
    assert mean_pass_at_k([(4, 1), (4, 3)], 1) == pytest.approx(0.5)
    assert mean_pass_at_k([(1, 1)], 2) is None


def _scored(passed_by_item: dict[str, list[bool]], statuses: dict[str, list[str]] | None = None) -> pl.DataFrame:
    rows = []
    for item, flags in passed_by_item.items():
        for i, p in enumerate(flags):
            st = (statuses or {}).get(item, ["ok"] * len(flags))[i]
            rows.append({"item_id": item, "query_id": "q" + item, "category": "math", "sample_idx": i, "passed": p,
                         "verify_score": float(p), "verify_status": st, "finish_reason": "stop",
                         "truncated": False, "completion_tokens": 10 + i, "response": f"r{i}"})
    return pl.DataFrame(rows)


def test_pass_at_1_is_the_mean_of_per_sample_correctness():
    flags = {"a": [True, False, False, False], "b": [True, True, True, False], "c": [False] * 4}
    items = item_table(_scored(flags), k=4)
    per_sample = [p for f in flags.values() for p in f]
    row = summary_row(items, 4)
    assert row["pass_at_1"] == pytest.approx(sum(per_sample) / len(per_sample))  # equal n: same as the flat mean
    assert items.sort("item_id")["pass_at_1"].to_list() == [0.25, 0.75, 0.0]
    assert row["pass_at_k"] == pytest.approx(2 / 3)  # a and b have a correct sample, c none
    assert json.loads(row["pass_at"]) == {"1": pytest.approx(1 / 3), "2": pytest.approx((0.5 + 1.0 + 0) / 3),  # a: 1 - C(3,2)/C(4,2); b: n-c < 2
                                          "4": pytest.approx(2 / 3)}
    samples = json.loads(items.filter(pl.col("item_id") == "b")["samples"][0])
    assert [s["passed"] for s in samples] == [True, True, True, False]


def test_samples_without_a_verdict_are_left_out_not_counted_wrong():
    flags = {"a": [True, False], "b": [False, False]}
    st = {"a": ["ok", "verifier_error"], "b": ["timeout", "unparseable"]}
    items = item_table(_scored(flags, st), k=2).sort("item_id")
    assert items["n"].to_list() == [1, 2] and items["pass_at_1"].to_list() == [1.0, 0.0]
    assert items["pass_at_k"].to_list() == [None, 0.0]  # one judged sample: no pass@2
    row = summary_row(items, 2)
    assert row["pass_at_1"] == 0.5 and json.loads(row["statuses"]) == {"ok": 1, "verifier_error": 1,
                                                                      "timeout": 1, "unparseable": 1}


def test_eval_answer_prefers_the_tagged_answer():
    assert eval_answer("<think>2+2</think> <answer>4</answer>") == "4"
    assert eval_answer("so the answer is \\boxed{4}") == "so the answer is \\boxed{4}"


def test_comparison_pairs_trained_with_base_and_flags_regressions():
    scores = pl.DataFrame({"model": ["base", "m1", "base", "m1", "other"], "benchmark": ["g", "g", "h", "h", "g"],
                           "k": [2] * 5, "pass_at_1": [0.5, 0.75, 0.5, 0.25, 0.9], "pass_at_k": [0.6, 0.8, 0.6, 0.3, 1.0]})
    registry = pl.DataFrame({"model_id": ["m1"], "base_key": ["base"]})
    cmp = comparison(scores, registry)
    assert cmp.select("benchmark", "base_pass_at_1", "pass_at_1", "delta_pass_at_1").rows() == [
        ("g", 0.5, 0.75, 0.25), ("h", 0.5, 0.25, -0.25)]
    assert regressions(cmp)["benchmark"].to_list() == ["h"]
    md = comparison_markdown(cmp)
    assert "| m1 | base | h | 2 | 50.0 | 25.0 | -25.0 |" in md
    assert comparison_png(cmp)[:4] == b"\x89PNG"
    assert comparison(scores, registry.clear()).height == 0
