"""Stage: mix."""


def build(cfg) -> list:
    return []
