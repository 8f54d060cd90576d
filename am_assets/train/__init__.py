"""Stage: train. training_mix -> trained_model (TRL SFT through Dagster Pipes) + model_registry."""

from am_assets.train.assets import model_registry, trained_model


def build(cfg) -> list:
    return [trained_model, model_registry]
