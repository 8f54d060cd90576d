"""Stage: dedup."""


def build(cfg) -> list:
    return []
