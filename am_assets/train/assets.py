"""trained_model: SFT on training_mix, run out of process by TRL through Dagster Pipes; model_registry:
one row per trained model, and the `model` partitions eval_scores evaluates."""
import json
import os
import shutil
import sys
from pathlib import Path

import dagster as dg
import polars as pl

from am_assets.train.logic import (COMPLETE_MARKER, grad_accumulation, launch_command, loss_curve_png,
                                   mix_data_version, model_id, model_key, to_sft_records,
                                   total_steps)
from am_assets.core.partitions import ADDS_PARTITIONS_TAG
from am_assets.core.render import png_markdown
from am_assets.train.registry import REGISTRY_TABLE, read_registry, registry_row, sync_model_partitions
from resources.lake import LakeResource, materialize_result
from resources.models import resolve_model
from resources.pipeline import PipelineConfigResource

GROUP = "train"
PROJECT_DIR = Path(__file__).resolve().parents[2]


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file() and (folder / "config.json").is_file()


def _stage(folder: Path, mix: pl.DataFrame, t, spec: dict) -> Path:
    """A fresh `<id>.partial` folder with the training records and the spec; returns the spec path."""
    shutil.rmtree(folder, ignore_errors=True)  # left by a killed run
    folder.mkdir(parents=True)
    records = to_sft_records(mix, t.assistant_only_loss)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    spec.update(train_file=str(folder / "train.jsonl"), output_dir=str(folder),
                total_steps=total_steps(len(records), t.global_batch, t.epochs, t.max_steps))
    (folder / "spec.json").write_text(json.dumps(spec, indent=1))
    return folder / "spec.json"


def _train(context, client: dg.PipesSubprocessClient, t, spec_path: Path) -> tuple[list[dict], dict]:
    processes = t.num_processes if t.launcher == "accelerate" else 1
    cmd = launch_command(sys.executable, t.launcher, processes, spec_path, t.accelerate_config)
    context.log.info(f"launching SFT: {' '.join(cmd)}")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_DIR), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    messages = client.run(context=context, command=cmd, cwd=str(PROJECT_DIR), env=env).get_custom_messages()
    history = [m for m in messages if isinstance(m, dict) and "step" in m]
    summary = next((m["summary"] for m in messages if isinstance(m, dict) and "summary" in m), None)
    if summary is None:
        raise dg.Failure(f"SFT process {spec_path.parent} ended without a summary (see its log above)")
    return history, summary


@dg.asset(deps=["training_mix"], group_name=GROUP, code_version="1",
          description="SFT (TRL) on training_mix; a model folder keyed by (mix data version, training "
                      "config hash), registered by model_registry. Cached when that folder exists.")
def trained_model(context: dg.AssetExecutionContext, lake: LakeResource, pipeline: PipelineConfigResource,
                  pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    cfg = pipeline.load()
    t = cfg.training
    mix = lake.read("training_mix")
    if not mix.height:
        raise dg.Failure("lake table training_mix is empty or missing: materialize training_mix first")
    data_version, config_hash = mix_data_version(mix), t.config_hash()
    mid = model_id(data_version, config_hash)
    folder = Path(t.models_dir) / mid
    meta = {"model_id": mid, "path": str(folder), "data_version": data_version, "config_hash": config_hash,
            "config": dg.MetadataValue.json(t.model_dump(mode="json"))}
    cached = is_complete(folder)
    if cached:
        summary = json.loads((folder / COMPLETE_MARKER).read_text())
        context.log.info(f"{mid}: already trained at {folder}; nothing to do")
    else:
        base_path = resolve_model(t.base_model)
        spec = {"model_id": mid, "base_path": str(base_path), "training": t.model_dump(mode="json"),
                "grad_accumulation": grad_accumulation(t.global_batch, t.per_device_batch,
                                                       t.num_processes if t.launcher == "accelerate" else 1)}
        staging = folder.with_name(mid + ".partial")
        spec_path = _stage(staging, mix, t, spec)
        history, summary = _train(context, pipes_subprocess_client, t, spec_path)
        summary.update(history=history, data_version=data_version, config_hash=config_hash,
                       mix_delta_version=lake.version("training_mix"), base=t.base_model, run_id=context.run.run_id)
        shutil.rmtree(staging / "_trainer", ignore_errors=True)
        (staging / COMPLETE_MARKER).write_text(json.dumps(summary, indent=1))
        shutil.rmtree(folder, ignore_errors=True)  # an incomplete folder from an older layout
        staging.rename(folder)  # atomic: the folder exists only when complete
    history = summary.get("history", [])
    meta.update(cached=cached, final_loss=summary["final_loss"], steps=summary["steps"],
                train_samples=summary["train_samples"], dropped_too_long=summary["dropped_too_long"])
    if history:
        meta["first_loss"] = history[0]["loss"]
        meta["loss_curve"] = dg.MetadataValue.md(png_markdown(loss_curve_png(history, mid), "loss curve"))
    return dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(mid))


@dg.asset(deps=[trained_model], group_name=GROUP, code_version="1", tags={ADDS_PARTITIONS_TAG: "model"},
          description="Lake table model_registry: one row per trained model (path, base, config, data version, "
                      "loss), its own model_id partition; registers every evaluable model as a `model` partition "
                      "of eval_scores.")
def model_registry(context: dg.AssetExecutionContext, lake: LakeResource,
                   pipeline: PipelineConfigResource) -> dg.MaterializeResult:
    cfg = pipeline.load()
    t = cfg.training
    event = context.instance.get_latest_materialization_event(trained_model.key)
    if event is None or event.asset_materialization is None:
        raise dg.Failure("trained_model has no materialization: materialize trained_model first")
    meta = event.asset_materialization.metadata
    mid, folder = meta["model_id"].value, Path(meta["path"].value)
    if not is_complete(folder):
        raise dg.Failure(f"{folder}: the model trained_model recorded is gone or incomplete; materialize trained_model")
    summary = json.loads((folder / COMPLETE_MARKER).read_text())
    registry = read_registry(lake)
    version = lake.version(REGISTRY_TABLE)
    if mid not in registry["model_id"].to_list():  # also restores the row when the lake was reset
        version = lake.write_partition(REGISTRY_TABLE, registry_row(
            model_id=mid, path=str(folder), base=t.base_model, base_key=model_key(t.base_model),
            config=json.dumps(t.model_dump(mode="json"), sort_keys=True), config_hash=meta["config_hash"].value,
            data_version=meta["data_version"].value, mix_delta_version=summary.get("mix_delta_version"),
            train_samples=summary["train_samples"], dropped_too_long=summary["dropped_too_long"],
            steps=summary["steps"], final_loss=summary["final_loss"], run_id=summary.get("run_id", context.run.run_id),
        ), {"model_id": mid}, context=context)
        registry = read_registry(lake)
    added = sync_model_partitions(context.instance, cfg, lake)
    return materialize_result(lake, REGISTRY_TABLE, registry.drop("created_at"), version, {
        "models": registry.height, "latest": mid, "registered_model_partitions": dg.MetadataValue.json(added)})

