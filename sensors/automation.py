"""The automation condition on every materializable asset, and the sensor that evaluates it."""

import os

import dagster as dg

from am_assets.distill.api import RETRY_TAG
from resources.dagster_internals import Staleness

A = dg.AutomationCondition


def rows_to_retry(instance, assets_def, key: dg.AssetKey, partitions) -> dict:
    """{partition: n} for partitions whose latest materialization reported n > 0 failed rows with
    attempts left (the metadata entry the asset names in its RETRY_TAG tag). The runner and the
    automation condition both ask this, so a plain rerun and the sensor retry the same partitions."""
    entry = (assets_def.tags_by_key.get(key) or {}).get(RETRY_TAG) if assets_def is not None else None
    if not entry:
        return {}
    due = {}
    for pk in partitions:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[pk]),
                                                  limit=1).records
        meta = records[0].asset_materialization.metadata if records and records[0].asset_materialization else {}
        n = getattr(meta.get(entry), "value", 0) or 0
        if n > 0:
            due[pk] = n
    return due


class FailedRowsToRetry(dg.AutomationCondition):
    """Partitions holding failed rows (status 'error') with attempts left: due until the retry budget
    per row (the teacher's `max_attempts`, recorded in the `attempts` column) is spent."""

    @property
    def name(self) -> str:
        return "failed_rows_to_retry"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        node = context.asset_graph.get(context.key)
        assets_def = getattr(node, "assets_def", None)
        if assets_def is None or RETRY_TAG not in (assets_def.tags_by_key.get(context.key) or {}):
            return dg.AutomationResult(context, context.get_empty_subset())
        candidates = context.candidate_subset.expensively_compute_asset_partitions()
        due = rows_to_retry(context.asset_graph_view.instance, assets_def, context.key,
                            [ap.partition_key for ap in candidates])
        chosen = {ap for ap in candidates if ap.partition_key in due}
        return dg.AutomationResult(context, context.asset_graph_view.get_asset_subset_from_asset_partitions(
            context.key, chosen))


class SourceVersionChanged(dg.AutomationCondition):
    """Partitions last materialized against an observable source's data version that has since changed
    (an edited teacher, a changed source file or setting).

    A state, not an event: Dagster 1.13 attaches timing metadata to materializations only, so in
    `since_last_handled()` a new observation loses to a materialization of the same partition that
    lands in the same tick window, and the edit would never be requested. The stale causes are
    the same the UI shows and `am-distill demo` acts on.
    """

    @property
    def name(self) -> str:
        return "source_version_changed"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        graph, view = context.asset_graph, context.asset_graph_view
        sources = {k for k in graph.get(context.key).parent_keys if graph.get(k).is_observable}
        if not sources:
            return dg.AutomationResult(context, context.get_empty_subset())
        staleness = Staleness(view.instance, graph)  # Dagster exports no public staleness query
        changed = {ap for ap in context.candidate_subset.expensively_compute_asset_partitions()
                   if staleness.data_changed_in(ap.asset_key, ap.partition_key, sources)}
        return dg.AutomationResult(context, view.get_asset_subset_from_asset_partitions(context.key, changed))


def content_eager() -> dg.AutomationCondition:
    """`eager()`, but reacting to a dependency's new *data version* rather than to any new
    materialization (a rewrite with identical content does not cascade), and to *states* as well as
    events: a partition that is missing, or built against a config version that has since changed,
    is requested whenever its inputs are ready; so is one holding failed rows with attempts left.
    `eager()` alone forgets a partition that was already
    missing at the sensor's first tick (a source registered just before it) for good."""
    deps_changed = A.any_deps_match(A.data_version_changed()).with_label("any_deps_data_version_changed")
    # a failed run is not retried in a loop: it waits for a change of its inputs or a manual launch
    needs_build = ((A.missing() | SourceVersionChanged() | FailedRowsToRetry()) & ~A.execution_failed()).with_label(
        "missing_or_config_changed_or_rows_to_retry")
    return (A.in_latest_time_window()
            & (deps_changed.since_last_handled() | needs_build)
            & ~A.any_deps_missing() & ~A.any_deps_in_progress() & ~A.in_progress()).with_label("eager_on_content")


# New inputs (data versions) and new code versions both make a partition stale.
AUTOMATION = content_eager() | A.code_version_changed()

# AM_DISTILL_AUTOMATION=off starts a fresh instance with the sensor stopped (launch by hand first)
_on = os.environ.get("AM_DISTILL_AUTOMATION", "on").lower() not in ("0", "off", "false", "no")

# evaluated in the code server, as the custom condition above requires
automation = dg.AutomationConditionSensorDefinition(
    "automation", target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING if _on else dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=30, use_user_code_server=True,
    description="Requests the partitions whose inputs, code or config changed.")
