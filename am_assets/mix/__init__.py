"""Stage: mix. difficulty_scores + teacher_responses + verification_outcomes + unique_queries -> training_mix."""

from am_assets.mix.assets import mix_settings, training_mix


def build(cfg) -> list:
    return [mix_settings, training_mix]
