"""End to end on tiny settings: benchmarks (GSM8K sample, HumanEval sample) -> trained_model -> eval_scores
for the base and the trained model (real vLLM, real verifiers) -> eval_report and its WARN check."""

import json

import dagster as dg
import polars as pl
import pytest

from tests.conftest import BASE_ENGINE, Project, materialize, shared
from tests.train_data import TINY_TRAINING, gsm8k_mix

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, request, vllm_pool):
    root = tmp_path_factory.mktemp("evaluate")
    project = Project(root)
    # trained models are keyed by (mix content, training config): a rerun of this module finds its model in
    # the pytest cache and takes the cached path, which also restores the registry row in the new lake
    models_dir = request.config.cache.mkdir("am_distill_eval_models")
    project.write({
        "benchmarks": [
            {"name": "gsm8k", "kind": "file", "path": str(shared("gsm8k/test.jsonl")), "category": "math",
             "mapping": {"question": "question", "answer": "answer", "answer_format": "gsm8k"},
             "limit": 3, "samples": 2, "max_tokens": 64},
            {"name": "humaneval", "kind": "humaneval", "limit": 2, "samples": 2, "max_tokens": 96},
        ],
        "training": {**TINY_TRAINING, "max_steps": 2, "models_dir": str(models_dir)},
        "verification": {"sandbox": "local"},
        "evaluation": {"max_model_len": BASE_ENGINE["max_model_len"]},
    })
    project.lake().write_partition("training_mix", gsm8k_mix(shared("gsm8k/train.jsonl"), n=4), None)
    defs = project.defs()
    with dg.instance_for_test() as instance:
        for bench in ("gsm8k", "humaneval"):
            assert materialize(defs, instance, ["benchmarks"], partition_key=bench).success
        assert materialize(defs, instance, ["trained_model", "model_registry"]).success
        models = sorted(instance.get_dynamic_partitions("model"))
        results = {}
        project.pool = vllm_pool  # each model loads once, as in the CLI runner (the base one maybe earlier)
        pooled = project.defs()
        for model in models:
            for bench in ("gsm8k", "humaneval"):
                key = dg.MultiPartitionKey({"model": model, "benchmark": bench})
                results[(model, bench)] = materialize(pooled, instance, ["eval_scores"], partition_key=key)
        project.pool = None
        report = dg.materialize(list(defs.assets) + list(defs.asset_checks or []), selection=["eval_report"],
                                instance=instance, resources=defs.resources)
        yield project, models, results, report


def test_scores_for_base_and_trained_on_both_benchmarks(evaluated):
    project, models, results, _ = evaluated
    registry = project.lake().read("model_registry")
    trained = registry["model_id"][0]
    assert models == sorted([trained, "smollm2-135m"])
    assert all(r.success for r in results.values())
    scores = project.lake().read("eval_scores").sort("model", "benchmark")
    assert scores.select("model", "benchmark").rows() == sorted((m, b) for m in models for b in ("gsm8k", "humaneval"))
    assert scores["k"].to_list() == [2] * 4 and scores["n_items"].to_list() == [3, 2, 3, 2]
    for row in scores.iter_rows(named=True):
        assert 0 <= row["pass_at_1"] <= row["pass_at_k"] <= 1, row
        assert json.loads(row["sampling"])["temperature"] == 0.6 and json.loads(row["sampling"])["top_p"] == 0.95
    items = project.lake().read("eval_items")
    assert items.height == 10 and set(items["n"].to_list()) <= {0, 1, 2}
    # pass@1 of the benchmark = mean over items of the per-item mean over samples
    for (model, bench), g in items.group_by("model", "benchmark"):
        want = g.filter(pl.col("n") > 0)["pass_at_1"].mean()
        got = scores.filter((pl.col("model") == model) & (pl.col("benchmark") == bench))["pass_at_1"][0]
        assert got == pytest.approx(want)


def test_items_carry_real_verdicts(evaluated):
    project, *_ = evaluated
    items = project.lake().read("eval_items")
    for row in items.iter_rows(named=True):
        samples = json.loads(row["samples"])
        assert len(samples) == 2 and all(s["response"] for s in samples)
        # math is judged by Math-Verify, code in the sandbox: no sample lacks a verdict for want of a verifier
        assert all(s["status"] in ("ok", "truncated", "timeout", "unparseable") for s in samples), samples
    he = items.filter(pl.col("benchmark") == "humaneval")
    assert he["category"].unique().to_list() == ["code"]


def test_report_compares_base_and_trained(evaluated):
    project, models, results, report = evaluated
    assert report.success
    mat = report.asset_materializations_for_node("eval_report")[0]
    assert mat.metadata["pairs"].value == 2
    assert "| gsm8k |" in mat.metadata["comparison"].value and "data:image/png" in mat.metadata["plot"].value
    [check] = report.get_asset_check_evaluations()
    worse = mat.metadata["regressions"].value
    assert check.passed == (worse == 0) and check.severity == dg.AssetCheckSeverity.WARN
    trained = project.lake().read("model_registry")["model_id"][0]
    scored = results[(trained, "gsm8k")].asset_materializations_for_node("eval_scores")[0].metadata
    assert scored["base"].value == "smollm2-135m"
