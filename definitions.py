"""The code location: `dagster dev` (workspace.yaml) and `dagster definitions validate` load `defs`."""

import os
from pathlib import Path

import dagster as dg

from am_assets import build_all
from resources import build_resources
from resources.config import load_config
from sensors import ALL_SENSORS, AUTOMATION

PROJECT_DIR = Path(__file__).resolve().parent


def config_path() -> Path:
    return Path(os.environ.get("AM_DISTILL_CONFIG") or PROJECT_DIR / "pipeline.yaml")


def _with_automation(spec: dg.AssetSpec) -> dg.AssetSpec:
    return spec if spec.automation_condition is not None else spec.replace_attributes(automation_condition=AUTOMATION)


def build_defs(path: str | Path | None = None) -> dg.Definitions:
    path = Path(path or config_path()).resolve()
    cfg = load_config(path)
    assets = [a.map_asset_specs(_with_automation) if isinstance(a, dg.AssetsDefinition) and a.is_materializable else a
              for a in build_all(cfg)]
    return dg.Definitions(assets=assets, resources=build_resources(cfg, path), sensors=ALL_SENSORS)


defs = build_defs()
