"""Registry sensors: pipeline.yaml (and the landing folder) -> dynamic partitions + source data versions.

A new source, landed file, benchmark or teacher becomes a dynamic partition; a changed one gets a new
observed data version on `source_files` / `teacher_config`. They request no runs themselves: the
automation sensor (eager conditions) requests exactly the partitions that became missing or stale.

Removing an entry from the config is deliberate and conservative: its partition and its Delta rows are
kept (for audit and lineage), downstream stages read only the sources/teachers still configured, and
the sensor logs a warning naming it. `am-distill forget <kind> <name>` deletes the partition for good.
"""

from __future__ import annotations

import json

import dagster as dg

from am_assets import benchmark_versions, observed_versions, settings_versions, source_versions, teacher_versions
from am_assets.core.partitions import benchmark_partitions, source_partitions, sync_dynamic_partitions, teacher_partitions
from resources.pipeline import PipelineConfigResource

DATA_VERSION_TAG = "dagster/data_version"


def observations(asset: str, versions: dict[str, str], previous: dict[str, str]) -> list[dg.AssetObservation]:
    return [dg.AssetObservation(asset_key=asset, partition=name, tags={DATA_VERSION_TAG: v},
                                metadata={"data_version": v})
            for name, v in sorted(versions.items()) if previous.get(name) != v]


def _sync(context, dimension, partitions_def, names: list[str]) -> list:
    known = set(context.instance.get_dynamic_partitions(dimension))
    removed = sorted(known - set(names))
    if removed:
        context.log.warning(f"{dimension} partitions no longer in the config (kept, not deleted): {removed}")
    new = [n for n in names if n not in known]
    if new:
        context.log.info(f"new {dimension} partitions: {new}")
    return [partitions_def.build_add_request(new)] if new else []


@dg.sensor(name="source_registry", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Sources, landed files and benchmarks in pipeline.yaml become partitions; changed files are observed.")
def source_registry(context: dg.SensorEvaluationContext, pipeline: PipelineConfigResource) -> dg.SensorResult:
    cfg = pipeline.load()
    versions, bench_versions = source_versions(cfg), benchmark_versions(cfg)
    requests = _sync(context, "source", source_partitions, list(versions))
    requests += _sync(context, "benchmark", benchmark_partitions, list(bench_versions))
    previous = json.loads(context.cursor or "{}")
    events = (observations("source_files", versions, previous.get("sources", {}))
              + observations("benchmark_files", bench_versions, previous.get("benchmarks", {})))
    return dg.SensorResult(dynamic_partitions_requests=requests, asset_events=events,
                           cursor=json.dumps({"sources": versions, "benchmarks": bench_versions}))


@dg.sensor(name="teacher_registry", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Teachers in pipeline.yaml become partitions; an edited teacher gets a new data version.")
def teacher_registry(context: dg.SensorEvaluationContext, pipeline: PipelineConfigResource) -> dg.SensorResult:
    cfg = pipeline.load()
    versions = teacher_versions(cfg)
    requests = _sync(context, "teacher", teacher_partitions, list(versions))
    previous = json.loads(context.cursor or "{}")
    return dg.SensorResult(dynamic_partitions_requests=requests,
                           asset_events=observations("teacher_config", versions, previous),
                           cursor=json.dumps(versions))


@dg.sensor(name="settings_observer", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Selection and grading settings in pipeline.yaml; a changed setting gets a new data version.")
def settings_observer(context: dg.SensorEvaluationContext, pipeline: PipelineConfigResource) -> dg.SensorResult:
    versions = settings_versions(pipeline.load())
    previous = json.loads(context.cursor or "{}")
    events = [dg.AssetObservation(asset_key=name, tags={DATA_VERSION_TAG: v}, metadata={"data_version": v})
              for name, v in sorted(versions.items()) if previous.get(name) != v]
    return dg.SensorResult(asset_events=events, cursor=json.dumps(versions))


def recorded_version(entry: dg.EventLogEntry) -> str | None:
    """The data version an observation or materialization recorded (its DATA_VERSION_TAG tag)."""
    event = entry.asset_observation or entry.asset_materialization
    return (event.tags or {}).get(DATA_VERSION_TAG) if event is not None else None


def record_observations(instance: dg.DagsterInstance, cfg) -> int:
    """What the sensors do, for the CLI: register partitions and record changed data versions now."""
    sync_dynamic_partitions(instance, cfg)
    n = 0
    for (asset, partition), v in observed_versions(cfg).items():
        latest = instance.get_latest_data_version_record(dg.AssetKey(asset), is_source=True, partition_key=partition)
        if latest is None or recorded_version(latest.event_log_entry) != v:
            instance.report_runless_asset_event(
                dg.AssetObservation(asset_key=asset, partition=partition, tags={DATA_VERSION_TAG: v}))
            n += 1
    return n
