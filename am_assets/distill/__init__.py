"""Stage 3: teacher_config [teacher] -> teacher_responses [teacher x shard]."""

from am_assets.distill.assets import build_teacher_responses, teacher_config


def build(cfg) -> list:
    return [teacher_config, build_teacher_responses(cfg.shards)]
