"""Stage: verify."""


def build(cfg) -> list:
    return []
