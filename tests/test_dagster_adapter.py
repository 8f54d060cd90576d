"""resources/dagster_internals.py: the Dagster internals the project needs, on the Dagster it was checked
against. A Dagster upgrade fails here first, loudly, naming what to re-check."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import dagster as dg

from resources import dagster_internals as di
from tests.conftest import PROJECT_DIR


def test_dagster_is_the_version_the_internals_were_checked_against():
    pin = re.search(r'"dagster==([^"]+)"', (PROJECT_DIR / "pyproject.toml").read_text()).group(1)
    assert dg.__version__ == di.CHECKED_VERSION == pin, (
        f"Dagster {dg.__version__} is installed, resources/dagster_internals.py was checked against "
        f"{di.CHECKED_VERSION} and pyproject.toml pins {pin}: re-check every name that module imports "
        "(staleness resolver, loading context, run coordinator and launcher), then update CHECKED_VERSION and the pin")


def test_the_run_coordinator_and_launcher_names_keep_their_shape():
    assert "submit_run" in dir(di.QueuedRunCoordinator) and "launch_run" in dir(di.DefaultRunLauncher)
    assert list(inspect.signature(di.SubmitRunContext).parameters) == ["dagster_run", "workspace"]
    assert hasattr(di.WorkerStatus, "RUNNING") and "status" in inspect.signature(di.CheckRunHealthResult).parameters


def test_staleness_says_missing_fresh_then_stale_on_a_new_code_version(tmp_path: Path):
    def defs(version: str) -> dg.Definitions:
        @dg.asset(code_version="1")
        def up() -> int:
            return 1

        @dg.asset(code_version=version, deps=[up])
        def down() -> None:
            return None

        return dg.Definitions(assets=[up, down])

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = defs("1")
        graph = first.resolve_asset_graph()
        assert di.Staleness(instance, graph).status(dg.AssetKey("down"), None) == "MISSING"
        assert dg.materialize(list(first.assets), instance=instance).success
        assert di.Staleness(instance, graph).status(dg.AssetKey("down"), None) == "FRESH"
        bumped = defs("2").resolve_asset_graph()
        assert di.Staleness(instance, bumped).status(dg.AssetKey("down"), None) == "STALE"
        assert not di.Staleness(instance, bumped).data_changed_in(dg.AssetKey("down"), None, {dg.AssetKey("up")})
