"""Resources, built from the validated pipeline config. `resources/` is a leaf: it imports only itself."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from resources.config import PipelineConfig
from resources.embedder import EmbedderResource, embedder_from_config
from resources.engines import EnginesResource
from resources.judge import JudgeResource
from resources.lake import LakeResource
from resources.pipeline import PipelineConfigResource
from resources.pool import ModelPool
from resources.sandbox import SandboxResource


def embedder_definition(embedder: EmbedderResource) -> dg.ResourceDefinition:
    """`embedder`, loading into the `engines` resource's model pool: the step (or the CLI command) that
    opened the pool closes the model with it."""

    @dg.resource(required_resource_keys={"engines"}, description=f"{embedder.kind} embedder {embedder.model} "
                 f"on {embedder.device} (loads into the engines' model pool)")
    def embedder_resource(context) -> EmbedderResource:
        return embedder.bound(context.resources.engines.pool)

    return embedder_resource


def build_resources(cfg: PipelineConfig, config_path: str | Path) -> dict:
    return {
        "pipeline": PipelineConfigResource(path=str(config_path), shards=cfg.shards),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),  # SFT runs out of process (train)
        # LAKE_ROOT overrides the file, so one config serves a laptop and object storage
        "lake": LakeResource(root=os.environ.get("LAKE_ROOT") or cfg.lake_root, storage_options=cfg.storage_options),
        "engines": EnginesResource(),
        "embedder": embedder_definition(embedder_from_config(cfg.dedup.embedder, config_path)),
        "sandbox": SandboxResource(backend=cfg.verification.sandbox, image=cfg.verification.sandbox_image, timeout_s=cfg.verification.code_timeout_s),
        "judge": JudgeResource(teacher=cfg.verification.judge_teacher),
    }


def sharing(resources: dict, pool: ModelPool, cfg: PipelineConfig | None = None) -> dict:
    """`resources` for many runs in one process (the CLI runner, tests): every run uses `pool` (each
    model loads once; the caller closes it) and, given `cfg`, the config parsed once."""
    engines = EnginesResource.sharing(pool)
    out = {**resources, "engines": dg.ResourceDefinition.hardcoded_resource(engines)}
    if cfg is not None:
        pipeline = resources["pipeline"]
        out["pipeline"] = dg.ResourceDefinition.hardcoded_resource(
            PipelineConfigResource.parsed(cfg, pipeline.path, pipeline.shards))
    return out
