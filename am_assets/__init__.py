"""One package per pipeline stage. Each exposes `build(cfg) -> list` of its asset/check definitions
(shard-partitioned assets need the shard count from the config, so they are built, not imported)."""

from am_assets import dedup, difficulty, distill, evaluate, ingest, mix, train, verify

STAGES = [ingest, dedup, distill, verify, difficulty, mix, train, evaluate]


def build_all(cfg) -> list:
    return [d for stage in STAGES for d in stage.build(cfg)]
