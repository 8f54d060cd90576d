"""Stage: difficulty. verification_outcomes [teacher x shard] -> difficulty_scores [shard]."""

from am_assets.difficulty.assets import build_difficulty_scores, difficulty_settings


def build(cfg) -> list:
    return [difficulty_settings, build_difficulty_scores(cfg)]
