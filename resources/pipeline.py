"""The pipeline.yaml as a resource, so assets receive the validated config."""

from __future__ import annotations

import dagster as dg

from resources.config import PipelineConfig, load_config


class PipelineConfigResource(dg.ConfigurableResource):
    """Path to pipeline.yaml; `load()` validates it (a ConfigError names file and key)."""

    path: str = "pipeline.yaml"

    def load(self) -> PipelineConfig:
        return load_config(self.path)
