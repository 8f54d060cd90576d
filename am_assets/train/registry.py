"""The `model_registry` Delta table and the models that `eval_scores` evaluates.

One registry row per trained model, stored as its own `model_id` partition so a new model never
rewrites an old row. `model` partition keys: trained model ids, their base models and the configured
extra models (folder names).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from am_assets.train.logic import REGISTRY_SCHEMA, model_key
from resources.instance import add_partitions
from resources.lake import LakeResource

REGISTRY_TABLE = "model_registry"


def registry_row(**fields) -> pl.DataFrame:
    fields.setdefault("created_at", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    missing = set(REGISTRY_SCHEMA) - set(fields)
    if missing:
        raise ValueError(f"registry row lacks {sorted(missing)}")
    return pl.DataFrame([{k: fields[k] for k in REGISTRY_SCHEMA}], schema=REGISTRY_SCHEMA)


def read_registry(lake: LakeResource) -> pl.DataFrame:
    df = lake.read(REGISTRY_TABLE)
    return df if df.height else pl.DataFrame(schema=REGISTRY_SCHEMA)


def eval_models(cfg, lake: LakeResource) -> dict[str, str]:
    """`model` partition key -> model name or folder, for every model eval_scores may evaluate."""
    from resources.models import DEFAULT_MODEL

    models: dict[str, str] = {model_key(cfg.training.base_model): cfg.training.base_model}
    for extra in cfg.evaluation.extra_models:
        models[model_key(extra)] = extra
    for row in read_registry(lake).iter_rows(named=True):
        if Path(row["path"]).is_dir():  # a deleted folder cannot be evaluated
            models[row["model_id"]] = row["path"]
        models.setdefault(row["base_key"], row["base"])
    # the default base is a name, resolved on use; everything else is a folder
    return {k: v if v == DEFAULT_MODEL else str(Path(v).expanduser()) for k, v in models.items()}


def sync_model_partitions(instance, cfg, lake: LakeResource) -> list[str]:
    """Register every evaluable model as a `model` partition; returns the keys added."""
    return add_partitions(instance, "model", list(eval_models(cfg, lake)))
