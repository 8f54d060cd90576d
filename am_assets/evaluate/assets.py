"""eval_scores [model x benchmark] (vLLM generation + the verification stage's verifiers) and eval_report."""
import datetime as dt
import json

import dagster as dg
import polars as pl

from am_assets.evaluate.logic import conversations, item_table, samples_frame, score_samples, summary_row
from am_assets.core.render import png_markdown
from am_assets.evaluate.report import comparison, comparison_markdown, comparison_png, regressions
from am_assets.core.partitions import model_benchmark_partitions, partition_dimensions
from am_assets.train.api import eval_models, read_registry
from am_assets.verify.api import Judge
from resources.engines import EnginesResource
from resources.judge import JudgeResource
from resources.lake import LakeResource, materialize_result
from resources.pipeline import PipelineConfigResource
from resources.sandbox import SandboxResource

GROUP = "evaluate"
SCORES, ITEMS = "eval_scores", "eval_items"


def _engine(engines: EnginesResource, model_key: str, model: str, sampling, max_model_len: int):
    from resources.config import VllmTeacher

    return engines.engine(VllmTeacher(name=model_key, kind="vllm", model=model, sampling=sampling,
                                  max_model_len=max_model_len))


def _base_comparison(lake: LakeResource, model: str, benchmark: str, row: dict) -> dict:
    """For a trained model: its base's scores on the same benchmark, if already evaluated."""
    reg = read_registry(lake).filter(pl.col("model_id") == model)
    if not reg.height:
        return {}
    base = reg["base_key"][0]
    prior = lake.read(SCORES, {"model": base, "benchmark": benchmark})
    if not prior.height:
        return {"base": base, "base_pass_at_1": "not evaluated yet"}
    b = prior.row(0, named=True)
    return {"base": base, "base_pass_at_1": b["pass_at_1"],
            "delta_pass_at_1": None if row["pass_at_1"] is None or b["pass_at_1"] is None
            else row["pass_at_1"] - b["pass_at_1"]}


# No dep on trained_model: a new model arrives as a new `model` partition; a dep would mark every
# partition (the base's too) stale and re-evaluate unchanged models.
@dg.asset(partitions_def=model_benchmark_partitions(), group_name=GROUP, code_version="1",
          deps=[dg.AssetDep("benchmarks", partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
              partition_dimension_name="benchmark"))],
          description="pass@1 (mean over k samples) and unbiased pass@k of one model on one benchmark; per-item "
                      "rows in lake table eval_items. Verdicts come from the verification stage's verifiers.")
def eval_scores(context: dg.AssetExecutionContext, lake: LakeResource, pipeline: PipelineConfigResource,
                sandbox: SandboxResource, judge: JudgeResource, engines: EnginesResource) -> dg.MaterializeResult:
    from resources.config import SamplingConfig

    cfg = pipeline.load()
    ev = cfg.evaluation
    keys = partition_dimensions(context)
    model, benchmark = keys["model"], keys["benchmark"]
    models = eval_models(cfg, lake)
    if model not in models:
        raise dg.Failure(f"model partition {model!r} is neither the base, an evaluation.extra_models entry nor a "
                         f"model_registry row with an existing folder (known: {sorted(models)})")
    bcfg = cfg.benchmark(benchmark)
    bench = lake.read("benchmarks", {"benchmark": benchmark})
    if not bench.height:
        raise dg.Failure(f"lake table benchmarks has no rows for benchmark={benchmark}: materialize benchmarks first")
    sampling = SamplingConfig(n=bcfg.samples, temperature=ev.temperature, top_p=ev.top_p,
                              max_tokens=bcfg.max_tokens, seed=ev.seed)
    context.log.info(f"{model} on {benchmark}: {bench.height} items x {bcfg.samples} samples, "
                     f"max_tokens {bcfg.max_tokens}")
    outs = _engine(engines, model, models[model], sampling, ev.max_model_len).chat(
        conversations(bench, ev.system_prompt, ev.math_suffix, ev.choice_suffix), sampling)
    samples = samples_frame(bench, outs, model, benchmark)
    context.log.info(f"{samples.height} samples generated ({int(samples['completion_tokens'].sum())} tokens); "
                     "verifying")
    judged = Judge(judge, cfg, engines)
    scored = score_samples(samples, bench, cfg.verification, sandbox_factory=sandbox.get, judge=judged,
                           judge_version=judged.version(), log=context.log.info, models=engines.pool)
    items = item_table(scored, bcfg.samples)
    part = {"model": model, "benchmark": benchmark}
    lake.write_partition(ITEMS, items, part, context=context)
    row = {**summary_row(items, bcfg.samples), "model_path": models[model], "sampling": sampling.model_dump_json(),
           "system_prompt": ev.system_prompt, "run_id": context.run.run_id,
           "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    scores = pl.DataFrame([row])
    version = lake.write_partition(SCORES, scores, part, context=context)
    context.log.info(f"{model} on {benchmark}: pass@1 {row['pass_at_1']}, pass@{bcfg.samples} {row['pass_at_k']}")
    meta = {k: row[k] for k in ("pass_at_1", "pass_at_k", "k", "n_items", "n_scored_items", "sample_accuracy",
                                "mean_completion_tokens", "truncated_rate")}
    meta.update(pass_at=dg.MetadataValue.json(json.loads(row["pass_at"])),
                statuses=dg.MetadataValue.json(json.loads(row["statuses"])),
                **_base_comparison(lake, model, benchmark, row))
    return materialize_result(lake, SCORES, scores.drop("run_id", "created_at"), version,
                              {k: v for k, v in meta.items() if v is not None})


@dg.asset(deps=[eval_scores, "model_registry"], group_name=GROUP, code_version="1",
          description="Base versus trained model per benchmark (pass@1, pass@k): table and bar chart.")
def eval_report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    cmp = comparison(lake.read(SCORES), read_registry(lake))
    version = lake.write_partition("eval_comparison", cmp, None, context=context)
    meta = {"comparison": dg.MetadataValue.md(comparison_markdown(cmp)), "pairs": cmp.height,
            "regressions": regressions(cmp).height}
    if cmp.height:
        meta["plot"] = dg.MetadataValue.md(png_markdown(comparison_png(cmp), "pass@1 base vs trained"))
    context.log.info(f"{cmp.height} (trained model, benchmark) pairs compared with their base")
    return materialize_result(lake, "eval_comparison", cmp, version, meta)


@dg.asset_check(asset=eval_report, description="WARN when a trained model's pass@1 is below its base's on a benchmark.")
def trained_not_worse_than_base(lake: LakeResource) -> dg.AssetCheckResult:
    cmp = comparison(lake.read(SCORES), read_registry(lake))
    worse = regressions(cmp)
    return dg.AssetCheckResult(
        passed=worse.height == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"compared": cmp.height, "worse": worse.height,
                  "worse_pairs": dg.MetadataValue.md(comparison_markdown(worse) if worse.height else "none")})
