"""The runner's order: an asset whose runs add partitions to a dynamic dimension (model_registry adds
`model`) runs before the assets partitioned on it (eval_scores), so a fan-in over them (eval_report)
reflects every partition after one `am-distill demo`."""

from __future__ import annotations

import pytest

from am_distill.cli.runner import graph_run_order, run_order


def test_partitions_are_added_before_the_assets_that_read_them():
    # the project's shape: eval_scores depends only on benchmarks, so a plain topological order runs it
    # (base model only) before model_registry has registered the trained model
    order = ["benchmarks", "eval_scores", "training_mix", "trained_model", "model_registry", "eval_report"]
    deps = {"eval_scores": {"benchmarks"}, "trained_model": {"training_mix"}, "model_registry": {"trained_model"},
            "eval_report": {"eval_scores", "model_registry"}}
    dims = {"benchmarks": {"benchmark"}, "eval_scores": {"model", "benchmark"}}
    assert run_order(order, deps, dims, {}) == order
    assert run_order(order, deps, dims, {"model_registry": {"model"}}) == [
        "benchmarks", "training_mix", "trained_model", "model_registry", "eval_scores", "eval_report"]


def test_an_extra_edge_that_would_close_a_cycle_is_left_out_and_a_real_cycle_is_an_error():
    deps = {"b": {"a"}}
    assert run_order(["a", "b"], deps, {"a": {"x"}}, {"b": {"x"}}) == ["a", "b"]  # the adder needs `a` first
    with pytest.raises(ValueError, match="cycle"):
        run_order(["a", "b"], {"a": {"b"}, "b": {"a"}}, {}, {})


def test_the_project_graph_runs_model_registry_before_eval_scores_and_eval_report_last(project):
    project.write({"shards": 1})
    names = [k.to_user_string() for k in graph_run_order(project.defs().resolve_asset_graph())]
    assert names.index("trained_model") < names.index("model_registry") < names.index("eval_scores")
    assert names[-1] == "eval_report"
