"""Stage: distill."""


def build(cfg) -> list:
    return []
