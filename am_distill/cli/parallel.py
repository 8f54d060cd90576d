"""`--parallel N`: N partitions of an asset at once on this machine, each a Dagster run.

Worker processes (spawned, so no state is inherited) each load the definitions once and keep one
ModelPool open for their life, so an engine or model loads once per worker, not once per partition,
and run the asset's job (`asset_job`) for the partitions handed to them. Processes, not threads:
verification and the engines are CPU-bound Python, and Dagster's in-process execution is not
thread-safe. Dagster's own multiprocess executor parallelizes the steps of one run, not partitions
(one run = one partition here), and its run queue needs a daemon: the production profile
(docs/deploy.md) uses that one.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import dagster as dg

_WORKER: dict[str, Any] = {}


def run_summary(result, key: dg.AssetKey) -> dict[str, Any]:
    """What the runner keeps of a run, as plain values (it crosses a process boundary)."""
    from am_distill.cli.runner import failure_text

    summary: dict[str, Any] = {"success": result.success, "run_id": result.run_id, "checks": [], "metadata": None}
    if not result.success:
        summary["failure"] = f"{failure_text(result)} (run {result.run_id})"
        return summary
    summary["checks"] = [(ev.check_name, ev.severity.value, ev.description or "")
                         for ev in result.get_asset_check_evaluations() if not ev.passed]
    for mat in result.asset_materializations_for_node(key.path[-1]):
        summary["metadata"] = {k: v.value for k, v in mat.metadata.items() if isinstance(v.value, (int, float, str, bool))}
    return summary


# The terminal shows a run's INFO lines and above (the assets' own lines, warnings, errors); Dagster's
# DEBUG line per event (~18 a run: STEP_START, HANDLED_OUTPUT, ENGINE_EVENT, ...) buried them. Every
# event is still stored: the UI's run log shows them all.
CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def asset_job(assets, resources, key: dg.AssetKey) -> dg.JobDefinition:
    """The job `dg.materialize(assets, selection=[key])` builds, built once per asset and reused for
    each of its partitions (building it resolves the whole asset graph: ~70 ms a run at 16 shards)."""
    name = "__ephemeral_asset_job__"  # dg.materialize's name: the UI shows the runs as before
    job = dg.define_asset_job(name, selection=[key], config=CONSOLE)
    return dg.Definitions(jobs=[job], assets=assets, resources=resources).resolve_job_def(name)


def run_partition(job: dg.JobDefinition, key: dg.AssetKey, pk: str | None, instance) -> dict[str, Any]:
    from resources.instance import run_tags

    result = job.execute_in_process(instance=instance, partition_key=pk, raise_on_error=False, tags=run_tags())
    return run_summary(result, key)


def _init(config_path: str, dagster_home: str) -> None:
    import warnings

    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")
    os.environ["DAGSTER_HOME"] = dagster_home
    from definitions import build_defs
    from resources import sharing
    from resources.dagster_internals import speed_up
    from resources.pool import ModelPool

    defs = build_defs(config_path)
    pool = ModelPool()
    pool.__enter__()
    atexit.register(pool.__exit__, None, None, None)  # the worker's models close when it exits
    cfg = defs.resources["pipeline"].load()
    _WORKER.update(defs=defs, assets=list(defs.assets), resources=sharing(defs.resources, pool, cfg),
                   instance=dg.DagsterInstance.get())
    speed_up(_WORKER["instance"])


def _run(name: str, pk: str | None) -> dict[str, Any]:
    key = dg.AssetKey.from_user_string(name)
    jobs = _WORKER.setdefault("jobs", {})
    if name not in jobs:
        jobs[name] = asset_job(_WORKER["assets"], _WORKER["resources"], key)
    return run_partition(jobs[name], key, pk, _WORKER["instance"])


class PartitionPool:
    """N worker processes for the runner; `map(name, keys)` yields (key, summary) as runs finish."""

    def __init__(self, workers: int, config_path: str):
        self.executor = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init,
                                            initargs=(config_path, os.environ["DAGSTER_HOME"]))

    def map(self, name: str, keys: list[str | None]):
        futures = {self.executor.submit(_run, name, pk): pk for pk in keys}
        from concurrent.futures import as_completed

        for future in as_completed(futures):
            yield futures[future], future.result()

    def close(self) -> None:
        self.executor.shutdown(wait=True)
