"""The one place that imports Dagster internals (`dagster._...`): what Dagster 1.13 exports no public API for.

- Staleness (MISSING / STALE / FRESH and its causes), as the UI computes it: the CLI runner's "skip
  fresh partitions" and the automation condition that reacts to changed observable sources
  (reference/dagster.md section 3: `CachingStaleStatusResolver` with a test loading context).
- The run coordinator and launcher base classes of the production profile (resources/instance.py).

Everything else uses `dagster`'s public names. tests/test_layers.py fails when any other module imports
`dagster._`, and tests/test_dagster_internals.py fails loudly on a Dagster version other than the one
these were checked against (pyproject.toml pins it): re-check each name below, then update both.
"""

from __future__ import annotations

from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleCauseCategory
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus  # noqa: F401
from dagster._core.loader import LoadingContextForTest
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext  # noqa: F401

CHECKED_VERSION = "1.13.27"  # the Dagster these internals were checked against (= the pin in pyproject.toml)


class Staleness:
    """Stale status and causes of asset partitions, cached for one state of the instance (make a new one
    after runs: upstream may just have changed)."""

    def __init__(self, instance, asset_graph):
        self._resolver = CachingStaleStatusResolver(instance, asset_graph, LoadingContextForTest(instance))

    def status(self, key, partition: str | None) -> str:
        """"MISSING" | "STALE" | "FRESH"."""
        return self._resolver.get_status(key, partition).value

    def data_changed_in(self, key, partition: str | None, sources: set) -> bool:
        """Is the partition stale because one of `sources` (asset keys) has a new data version?"""
        return any(c.category == StaleCauseCategory.DATA and c.dependency is not None
                   and c.dependency.asset_key in sources for c in self._resolver.get_stale_causes(key, partition))
