"""One package per pipeline stage, over `am_assets.core`. Each stage exposes `build(cfg) -> list` of its
asset/check definitions (shard-partitioned assets need the shard count from the config, so they are
built, not imported) and, where other stages need it, an `api` module (tests/test_layers.py).

This package also gathers what spans the stages: every definition, and the data versions of every
observable source (the registry sensors and the CLI runner record them; the assets report them).
"""

from am_assets import dedup, difficulty, distill, evaluate, ingest, mix, train, verify
from am_assets.core.versions import teacher_versions
from am_assets.dedup.api import benchmark_versions
from am_assets.ingest.api import source_versions

STAGES = [ingest, dedup, distill, verify, difficulty, mix, train, evaluate]


def build_all(cfg) -> list:
    return [d for stage in STAGES for d in stage.build(cfg)]


def settings_versions(cfg) -> dict[str, str]:
    """Unpartitioned settings sources: asset name -> hash of the config it stands for."""
    from am_assets.difficulty.api import difficulty_settings_hash
    from am_assets.mix.api import mix_settings_hash
    from am_assets.verify.api import audit_settings_hash

    return {"difficulty_settings": difficulty_settings_hash(cfg), "mix_settings": mix_settings_hash(cfg),
            "audit_settings": audit_settings_hash(cfg)}


def observed_versions(cfg) -> dict[tuple[str, str | None], str]:
    """Every observable source asset of the project: (asset, partition or None) -> data version."""
    out: dict[tuple[str, str | None], str] = {}
    out.update({("source_files", k): v for k, v in source_versions(cfg).items()})
    out.update({("benchmark_files", k): v for k, v in benchmark_versions(cfg).items()})
    out.update({("teacher_config", k): v for k, v in teacher_versions(cfg).items()})
    out.update({(k, None): v for k, v in settings_versions(cfg).items()})
    return out


__all__ = ["STAGES", "benchmark_versions", "build_all", "observed_versions", "settings_versions", "source_versions",
           "teacher_versions"]
