"""Stage: evaluate."""


def build(cfg) -> list:
    return []
