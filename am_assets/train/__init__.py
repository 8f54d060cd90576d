"""Stage: train."""


def build(cfg) -> list:
    return []
