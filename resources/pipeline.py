"""The pipeline.yaml as a typed resource: assets receive the validated config, parsed once per step (or
once per CLI command: the runner hands its parsed config to every run).

The definitions were built from the config too (the shard count is a static partition dimension): a
config whose shard count no longer matches them fails here, with both numbers, instead of writing
shards the definitions do not know.
"""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from resources.config import ConfigError, PipelineConfig, load_config


class PipelineConfigResource(dg.ConfigurableResource):
    """Path to pipeline.yaml; `load()` returns the validated config (a ConfigError names file and key)."""

    path: str = "pipeline.yaml"
    shards: int | None = None  # the shard count the definitions were built with; None: not checked

    _cfg: PipelineConfig | None = PrivateAttr(default=None)

    @classmethod
    def parsed(cls, cfg: PipelineConfig, path: str, shards: int | None = None) -> "PipelineConfigResource":
        """An instance holding an already parsed config (the CLI runner: wrap it in
        `dg.ResourceDefinition.hardcoded_resource` so Dagster passes it as is)."""
        res = cls(path=str(path), shards=shards)
        res._cfg = res._checked(cfg)
        return res

    def setup_for_execution(self, context) -> None:
        self._cfg = self._checked(load_config(self.path))

    def _checked(self, cfg: PipelineConfig) -> PipelineConfig:
        if self.shards is not None and cfg.shards != self.shards:
            raise ConfigError(
                f"{self.path}: shards is {cfg.shards} but the definitions were built with {self.shards} shards; "
                "reload the code location (`dagster dev`: Reload definitions) or rerun the command, so that "
                "definitions and config agree")
        return cfg

    def load(self) -> PipelineConfig:
        if self._cfg is None:  # outside a Dagster step (sensors read the file each tick: it may change)
            return self._checked(load_config(self.path))
        return self._cfg

    def teacher(self, name: str):
        """The teacher of a run's `teacher` partition; a partition the config no longer names is a clear error."""
        cfg = self.load()
        try:
            return cfg.teacher(name)
        except KeyError:
            raise ConfigError(f"{self.path}: teacher partition {name!r} is not in the config (teachers: "
                              f"{[t.name for t in cfg.teachers]}); add it back, or stop requesting its partitions "
                              "(`am-distill` and the sensors skip teachers removed from the config)") from None
