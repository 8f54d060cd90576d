"""Materialize assets partition by partition, upstream first, skipping fresh partitions.

This is what `am-distill demo|materialize|backfill` run: the same decision the UI shows (missing or
stale = run, fresh = skip; a partition holding failed rows with attempts left runs too), executed
in-process with one open model pool and the config parsed once, so each engine or model loads once per
command. The CLI layer is the only one that drives the sensors' logic (`record_observations`,
`rows_to_retry`) outside Dagster's daemon.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from am_assets.core.partitions import ADDS_PARTITIONS_TAG
from am_assets.distill.api import RETRY_TAG
from resources import sharing
from resources.dagster_internals import Staleness, speed_up
from resources.instance import fail_dead_runs
from resources.pool import ModelPool
from sensors.automation import rows_to_retry
from sensors.registry import record_observations


class MaterializationFailed(RuntimeError):
    pass


def failure_text(result) -> str:
    """Why a run failed, in the user's words: the step's exception, or a resource's (a config that no
    longer matches the definitions fails while the resources start)."""
    for event in result.all_events:
        if event.event_type_value in ("STEP_FAILURE", "RESOURCE_INIT_FAILURE"):
            err = event.event_specific_data.error
            # the user's exception, not Dagster's wrapper, nor what it was raised from (which loses the path)
            while err.cause is not None and (err.cls_name or "").startswith("Dagster"):
                err = err.cause
            return err.message.strip()
    return "unknown error"


@dataclass
class RunReport:
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per asset
    ran: list[tuple[str, str | None]] = field(default_factory=list)  # (asset, partition) in order
    metadata: dict[tuple[str, str | None], dict] = field(default_factory=dict)  # plain values
    failed_checks: list[tuple[str, str | None, str, str]] = field(default_factory=list)  # asset, partition, check, why
    failures: dict[tuple[str, str | None], str] = field(default_factory=dict)  # (asset, partition) -> why

    def partitions(self, asset: str) -> list[str | None]:
        return [p for a, p in self.ran if a == asset]

    def total(self, asset: str, key: str) -> int:
        """Sum of an integer metadata entry over the runs of one asset (e.g. rows `generated`)."""
        return sum(int(m.get(key) or 0) for (a, _), m in self.metadata.items() if a == asset)


def partition_keys(asset_def, instance) -> list[str | None]:
    pdef = asset_def.partitions_def
    if pdef is None:
        return [None]
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return list(pdef.get_partition_keys())


def _matches(asset_def, key: str, only: dict[str, str]) -> bool:
    """Does a partition key belong to the `only` dimensions (e.g. {"teacher": "t1"})?"""
    pdef = asset_def.partitions_def
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        by_dim = pdef.get_partition_key_from_str(key).keys_by_dimension
        return all(by_dim.get(d, v) == v for d, v in only.items())
    name = getattr(pdef, "name", None)  # a single dynamic dimension: source, teacher, ...
    return name not in only or key == only[name]


def stale_status(graph, instance):
    """A function (asset key, partition) -> MISSING | STALE | FRESH, as the UI computes it."""
    return Staleness(instance, graph).status


def run_order(order: list[str], deps: dict[str, set[str]], dims: dict[str, set[str]],
              adds: dict[str, set[str]]) -> list[str]:
    """`order` (a topological order) re-sorted so that every asset partitioned on a dynamic dimension runs
    after the assets whose runs add partitions to it, and so after them, the fan-in assets reading it.

    Without it `eval_scores` (model x benchmark) runs before `model_registry` registers the trained
    model, `eval_report` compares the base alone, and stays fresh afterwards. deps: asset -> upstream
    assets; dims: asset -> its dynamic partition dimensions; adds: asset -> dimensions its runs add to.
    An extra edge that would close a cycle (the adder depends on the asset) is left out.
    """
    def upstream(a: str, seen: set[str]) -> set[str]:
        for d in deps.get(a, ()):
            if d not in seen:
                seen.add(d)
                upstream(d, seen)
        return seen

    after = {a: set(deps.get(a, ())) & set(order) for a in order}
    for adder, added in adds.items():
        for a in order:
            if a != adder and dims.get(a, set()) & added and a not in upstream(adder, set()):
                after[a].add(adder)
    out, done = [], set()
    while len(out) < len(order):  # Kahn's algorithm, stable: the earliest ready asset of `order` first
        ready = next((a for a in order if a not in done and after[a] <= done), None)
        if ready is None:
            raise ValueError(f"cycle among {sorted(set(order) - done)}")
        out.append(ready)
        done.add(ready)
    return out


def graph_run_order(graph) -> list:
    """The asset keys of `graph` in `run_order`."""
    keys = list(graph.toposorted_asset_keys)
    names = {k.to_user_string(): k for k in keys}
    deps, dims, adds = {}, {}, {}
    for name, key in names.items():
        node = graph.get(key)
        deps[name] = {p.to_user_string() for p in node.parent_keys}
        dims[name] = _dynamic_dimensions(node.partitions_def)
        tag = (node.tags or {}).get(ADDS_PARTITIONS_TAG)
        if tag:
            adds[name] = set(tag.split(","))
    return [names[n] for n in run_order(list(names), deps, dims, adds)]


def _dynamic_dimensions(pdef) -> set[str]:
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        return {d.partitions_def.name for d in pdef.partitions_defs
                if isinstance(d.partitions_def, dg.DynamicPartitionsDefinition)}
    return {pdef.name} if isinstance(pdef, dg.DynamicPartitionsDefinition) else set()


def materialize_all(defs, instance, select: list[str] | None = None, partition: str | None = None,
                    only: dict[str, str] | None = None, force: bool = False, log=print,
                    max_passes: int = 3, pool: ModelPool | None = None, parallel: int = 1) -> RunReport:
    """Materialize the selected assets (default: all), upstream first, each partition in its own run.

    Only missing or stale partitions run unless `force`, and those holding failed rows with attempts
    left (`rows_to_retry`). `only` restricts partitioned assets to one
    value of a dimension (a per-teacher backfill). Runs are in-process, so engines and models load
    once per command. Passes repeat until nothing is left to run: a run can create partitions
    (a trained model becomes a new `model` partition of eval_scores) or make an earlier asset stale.
    `pool`: an open ModelPool the caller closes (tests share one across commands); default: one for this call.
    `parallel`: partitions of an asset run at once, each in one of that many worker processes.
    """
    if pool is None:
        with ModelPool() as own:
            return materialize_all(defs, instance, select, partition, only, force, log, max_passes, own, parallel)
    workers = None
    if parallel > 1:
        from am_distill.cli.parallel import PartitionPool

        workers = PartitionPool(parallel, defs.resources["pipeline"].path)
    try:
        return _materialize(defs, instance, select, partition, only, force, log, max_passes, pool, workers)
    finally:
        if workers is not None:
            workers.close()


def _materialize(defs, instance, select, partition, only, force, log, max_passes, pool, workers) -> RunReport:
    cfg = defs.resources["pipeline"].load()
    speed_up(instance)  # a run per partition: Dagster's SQLite event log costs ~0.3 s a run less
    fail_dead_runs(instance, log)  # runs a killed runner left STARTED would show as running forever
    record_observations(instance, cfg)  # what the sensors would do: partitions + source data versions
    report = RunReport()
    unchanged = None if force else NoOpMarker(defs, instance, cfg, select, partition, only)
    if unchanged is not None and unchanged.holds():
        log("nothing changed since the last check found every selected partition fresh")
        return report
    resources = sharing(defs.resources, pool, cfg)  # every run: this pool (each model loads once), this config
    settled = False  # the last pass checked every selected partition and found nothing to run
    for i in range(max_passes):
        ran = len(report.ran)
        # failed rows are retried once per command (the engine already retried each request)
        _one_pass(defs, resources, instance, report, select, partition, only, force and i == 0, log, retry=i == 0,
                  workers=workers)
        if len(report.ran) == ran or partition is not None:
            settled = len(report.ran) == ran and not (force and i == 0)
            break
    if report.failures:  # every other partition was tried first: one bad source does not stop the rest
        lines = [f"  {a} [{pk or 'unpartitioned'}]: {why}" for (a, pk), why in report.failures.items()]
        # the failures last: the final line of the CLI's output names what failed (a source's path)
        raise MaterializationFailed(f"{len(lines)} partition(s) failed; the others were built "
                                    "(`am-distill ui` shows each run's log):\n" + "\n".join(lines))
    # a full check found nothing stale or missing, and no partition holds failed rows with attempts left
    # (pass 0 ran every such partition; those that ran report what is left in their RETRY_TAG entry)
    if unchanged is not None and settled and not _rows_left(defs, report):
        unchanged.record()
    return report


def _rows_left(defs, report: RunReport) -> bool:
    """Did a partition that ran this command end with failed rows that have attempts left?"""
    graph = defs.resolve_asset_graph()
    for (name, _), meta in report.metadata.items():
        entry = (graph.get(dg.AssetKey.from_user_string(name)).tags or {}).get(RETRY_TAG)
        if entry and meta.get(entry):
            return True
    return False


class NoOpMarker:
    """Skips the per-partition staleness check (~50-100 ms a partition on SQLite, so ~1 min for 64
    shards x 4 teachers) when it cannot find anything: a full check of the same selection found every
    partition fresh and nothing due, and since then the instance has stored no event (materialization,
    observation, run, ...), the config, code versions and dynamic partitions are the same. Staleness
    and failed-row retries are functions of exactly these, so the answer would be the same."""

    def __init__(self, defs, instance, cfg, select, partition, only):
        root = getattr(instance, "root_directory", None)
        self.path = Path(root) / ".am-distill-noop.json" if root else None
        self.instance = instance
        graph = defs.resolve_asset_graph()
        spec = {"select": sorted(select or []), "partition": partition, "only": only,
                "config": cfg.model_dump_json(), "code": sorted(
                    (k.to_user_string(), graph.get(k).code_version or "") for k in graph.get_all_asset_keys()),
                "dynamic": {d: sorted(instance.get_dynamic_partitions(d)) for d in ("source", "teacher", "benchmark",
                                                                                     "model")}}
        self.key = hashlib.blake2b(json.dumps(spec, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()

    def _last_event(self) -> int:
        return int(self.instance.event_log_storage.get_maximum_record_id() or 0)

    def holds(self) -> bool:
        if self.path is None or not self.path.exists():
            return False
        try:
            seen = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return False
        return seen.get("key") == self.key and seen.get("last_event") == self._last_event()

    def record(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")  # renamed into place: readers never see half a file
        tmp.write_text(json.dumps({"key": self.key, "last_event": self._last_event()}))
        tmp.replace(self.path)


def _runs(defs, assets, key, keys, instance, resources, workers, log):
    """(partition, run summary) per partition: one after the other here, or on the worker processes."""
    from am_distill.cli.parallel import asset_job, run_partition

    if workers is not None and len(keys) > 1:
        yield from workers.map(key.to_user_string(), keys)
        return
    job = asset_job(assets, resources, key)
    for i, pk in enumerate(keys, 1):
        log(f"[{key.to_user_string()}] {pk or 'unpartitioned'} ({i}/{len(keys)})")
        yield pk, run_partition(job, key, pk, instance)


def _one_pass(defs, resources, instance, report: RunReport, select, partition, only, force, log, retry: bool,
              workers=None) -> None:
    graph = defs.resolve_asset_graph()
    assets = list(defs.assets)
    for key in graph_run_order(graph):
        name = key.to_user_string()
        node = graph.get(key)
        if not node.is_materializable or (select and name not in select):
            continue
        keys = [partition] if partition else partition_keys(node.assets_def, instance)
        if only:
            keys = [k for k in keys if k is None or _matches(node.assets_def, k, only)]
        if not force:
            status = stale_status(graph, instance)  # fresh resolver: upstream may just have run
            # failed rows with attempts left make a partition due as well (the automation sensor agrees)
            due = rows_to_retry(instance, node.assets_def, key,
                                [k for k in keys if status(key, k) == "FRESH"]) if retry else {}
            for pk, n in due.items():
                log(f"[{name}] {pk}: {n} failed rows to retry")
            keys = [k for k in keys if (status(key, k) != "FRESH" or k in due) and (name, k) not in report.failures]
            if not keys:
                log(f"[{name}] fresh")
                continue
        start = time.perf_counter()
        for i, (pk, run) in enumerate(_runs(defs, assets, key, keys, instance, resources, workers, log), 1):
            if workers is not None:
                log(f"[{name}] {pk or 'unpartitioned'} done ({i}/{len(keys)})")
            if not run["success"]:  # recorded, reported at the end; the other partitions go on
                report.failures[(name, pk)] = run["failure"]
                log(f"[{name}] {pk or 'unpartitioned'} FAILED: {report.failures[(name, pk)]}")
                continue
            report.ran.append((name, pk))
            for check, severity, why in run["checks"]:  # non-blocking checks do not fail the run: say so
                report.failed_checks.append((name, pk, check, why))
                log(f"[{name}] {pk or 'unpartitioned'}: check {check} FAILED ({severity}): {why}")
            if run["metadata"] is not None:
                report.metadata[(name, pk)] = run["metadata"]
        report.seconds[name] = report.seconds.get(name, 0.0) + time.perf_counter() - start
