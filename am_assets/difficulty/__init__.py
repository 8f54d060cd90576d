"""Stage: difficulty."""


def build(cfg) -> list:
    return []
