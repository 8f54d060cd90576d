"""The code location: `dagster dev` (workspace.yaml) and `dagster definitions validate` load `defs`."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from am_assets import build_all
from resources import build_resources
from resources.config import load_config

PROJECT_DIR = Path(__file__).resolve().parent


def config_path() -> Path:
    return Path(os.environ.get("AM_DISTILL_CONFIG") or PROJECT_DIR / "pipeline.yaml")


def build_defs(path: str | Path | None = None) -> dg.Definitions:
    path = Path(path or config_path()).resolve()
    cfg = load_config(path)
    return dg.Definitions(assets=build_all(cfg), resources=build_resources(cfg, path))


defs = build_defs()
