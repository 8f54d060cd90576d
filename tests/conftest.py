"""Shared fixtures: a temporary project (config + lake), the real data in ../shared/data, Dagster."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest
import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("AM_DISTILL_SHARED_DATA", PROJECT_DIR.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def shared(relpath: str) -> Path:
    """A file from ../shared/data; the test is skipped with a reason when it is absent."""
    path = SHARED_DATA / relpath
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/data is not beside this checkout)")
    return path


class Project:
    """A pipeline.yaml in a temp dir with its own lake; `defs()` builds the code location from it."""

    def __init__(self, root: Path, pool=None):
        self.root = root
        self.config_path = root / "pipeline.yaml"
        self.pool = pool  # an open ModelPool: every run of `defs()` shares its models (as the CLI runner does)

    def write(self, config: dict) -> Path:
        config = {"lake_root": str(self.root / "lake"), **config}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return self.config_path

    def cfg(self):
        from resources.config import load_config

        return load_config(self.config_path)

    def defs(self) -> dg.Definitions:
        from definitions import build_defs

        defs = build_defs(self.config_path)
        if self.pool is None:
            return defs
        from resources import sharing

        return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, sensors=defs.sensors,
                              resources=sharing(defs.resources, self.pool))

    def lake(self):
        from resources.lake import LakeResource

        return LakeResource(root=str(self.root / "lake"))


@pytest.fixture
def project(tmp_path, monkeypatch) -> Project:
    monkeypatch.delenv("LAKE_ROOT", raising=False)
    return Project(tmp_path)


# The packaged model as every test that generates with it asks for it: one vLLM engine settings key, so
# the session's pool loads it once (a vLLM engine takes ~30-130 s to load on 2 cores).
BASE_ENGINE = {"model": "smollm2-135m", "max_model_len": 1024}


@pytest.fixture(scope="session")
def vllm_pool():
    """One model pool for the session: engines stay loaded across modules (as in one CLI command) and
    shut down at its end (a vLLM engine core left running keeps pytest from exiting)."""
    from resources.pool import ModelPool

    with ModelPool() as pool:
        yield pool


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def materialize(defs: dg.Definitions, instance, selection: list[str], partition_key=None, raise_on_error=True):
    """Materialize the named assets of `defs` through Dagster, registering config partitions first."""
    from am_assets.core.partitions import sync_dynamic_partitions
    from resources.config import load_config

    cfg = load_config(defs.resources["pipeline"].path)
    sync_dynamic_partitions(instance, cfg)
    return dg.materialize(
        list(defs.assets),
        selection=selection,
        partition_key=partition_key,
        instance=instance,
        resources=defs.resources,
        raise_on_error=raise_on_error,
    )
