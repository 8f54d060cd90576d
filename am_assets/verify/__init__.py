"""Stage: teacher_responses (+ unique_queries) -> verification_outcomes [teacher x shard]."""


def build(cfg) -> list:
    from am_assets.verify.assets import build_verification_outcomes

    return [build_verification_outcomes(cfg)]
