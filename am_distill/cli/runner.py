"""Materialize assets partition by partition, upstream first, skipping fresh partitions.

This is what `am-distill demo|materialize|backfill` run: the same decision the UI shows (missing or
stale = run, fresh = skip; a partition holding failed rows with attempts left runs too), executed in-process so each engine or model loads once per command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import dagster as dg

from resources.engines import engines_kept_open
from resources.instance import fail_dead_runs, run_tags
from sensors.automation import rows_to_retry
from sensors.registry import record_observations


class MaterializationFailed(RuntimeError):
    pass


def _failure_text(result) -> str:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
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
    # internal API: Dagster exports no public staleness query (reference/dagster.md section 3)
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._core.loader import LoadingContextForTest

    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    return lambda key, pk: resolver.get_status(key, pk).value


def materialize_all(defs, instance, select: list[str] | None = None, partition: str | None = None,
                    only: dict[str, str] | None = None, force: bool = False, log=print,
                    max_passes: int = 3) -> RunReport:
    """Materialize the selected assets (default: all), upstream first, each partition in its own run.

    Only missing or stale partitions run unless `force`, and those holding failed rows with attempts
    left (`rows_to_retry`). `only` restricts partitioned assets to one
    value of a dimension (a per-teacher backfill). Runs are in-process, so engines and models load
    once per command. Passes repeat until nothing is left to run: a run can create partitions
    (a trained model becomes a new `model` partition of eval_scores) or make an earlier asset stale.
    """
    cfg = defs.resources["pipeline"].load()
    fail_dead_runs(instance, log)  # runs a killed runner left STARTED would show as running forever
    record_observations(instance, cfg)  # what the sensors would do: partitions + source data versions
    report = RunReport()
    with engines_kept_open():  # one process for every partition: load each model once
        for i in range(max_passes):
            ran = len(report.ran)
            # failed rows are retried once per command (the engine already retried each request)
            _one_pass(defs, instance, report, select, partition, only, force and i == 0, log, retry=i == 0)
            if len(report.ran) == ran or partition is not None:
                break
    if report.failures:  # every other partition was tried first: one bad source does not stop the rest
        lines = [f"  {a} [{pk or 'unpartitioned'}]: {why}" for (a, pk), why in report.failures.items()]
        # the failures last: the final line of the CLI's output names what failed (a source's path)
        raise MaterializationFailed(f"{len(lines)} partition(s) failed; the others were built "
                                    "(`am-distill ui` shows each run's log):\n" + "\n".join(lines))
    return report


def _one_pass(defs, instance, report: RunReport, select, partition, only, force, log, retry: bool) -> None:
    graph = defs.resolve_asset_graph()
    assets = list(defs.assets)
    for key in graph.toposorted_asset_keys:
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
        for i, pk in enumerate(keys, 1):
            log(f"[{name}] {pk or 'unpartitioned'} ({i}/{len(keys)})")
            result = dg.materialize(assets, selection=[key], partition_key=pk, instance=instance,
                                    resources=defs.resources, raise_on_error=False, tags=run_tags())
            if not result.success:  # recorded, reported at the end; the other partitions go on
                report.failures[(name, pk)] = f"{_failure_text(result)} (run {result.run_id})"
                log(f"[{name}] {pk or 'unpartitioned'} FAILED: {report.failures[(name, pk)]}")
                continue
            report.ran.append((name, pk))
            for ev in result.get_asset_check_evaluations():  # non-blocking checks do not fail the run: say so
                if not ev.passed:
                    report.failed_checks.append((name, pk, ev.check_name, ev.description or ""))
                    log(f"[{name}] {pk or 'unpartitioned'}: check {ev.check_name} FAILED ({ev.severity.value}): "
                        f"{ev.description or ''}")
            for mat in result.asset_materializations_for_node(key.path[-1]):
                report.metadata[(name, pk)] = {k: v.value for k, v in mat.metadata.items()
                                               if isinstance(v.value, (int, float, str, bool))}
        report.seconds[name] = report.seconds.get(name, 0.0) + time.perf_counter() - start
