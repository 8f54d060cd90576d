"""Resources, built from the validated pipeline config."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from resources.config import PipelineConfig
from resources.embedder import embedder_from_config
from resources.lake import LakeResource
from resources.pipeline import PipelineConfigResource
from resources.judge import JudgeResource
from resources.sandbox import SandboxResource


def build_resources(cfg: PipelineConfig, config_path: str | Path) -> dict:
    return {
        "pipeline": PipelineConfigResource(path=str(config_path)),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),  # SFT runs out of process (train)
        # LAKE_ROOT overrides the file, so one config serves a laptop and object storage
        "lake": LakeResource(root=os.environ.get("LAKE_ROOT") or cfg.lake_root, storage_options=cfg.storage_options),
        "embedder": embedder_from_config(cfg.dedup.embedder, config_path),
        "sandbox": SandboxResource(backend=cfg.verification.sandbox, image=cfg.verification.sandbox_image, timeout_s=cfg.verification.code_timeout_s),
        "judge": JudgeResource(config_path=str(config_path), teacher=cfg.verification.judge_teacher),
    }
