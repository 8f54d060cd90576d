"""Data versions of the observable sources (config entries and their files), one function per kind.

The observable source assets report these, and so do the registry sensors and the CLI runner
(`sensors/registry.py`); one definition, so the two can never disagree.
"""

import dagster as dg

from am_assets.ingest.logic import source_fingerprint


def source_versions(cfg) -> dict[str, str]:
    return {s.name: source_fingerprint(s) for s in cfg.all_sources()}


def benchmark_versions(cfg) -> dict[str, str]:
    from am_assets.dedup.bench_sources import benchmark_fingerprint

    return {b.name: benchmark_fingerprint(b) for b in cfg.benchmarks}


def teacher_versions(cfg) -> dict[str, str]:
    return {t.name: t.fingerprint() for t in cfg.teachers}


def settings_versions(cfg) -> dict[str, str]:
    """Unpartitioned settings sources: asset name -> hash of the config it stands for."""
    # imported here: these asset modules import this one
    from am_assets.difficulty.assets import difficulty_settings_hash
    from am_assets.mix.assets import mix_settings_hash
    from am_assets.verify.audit_asset import audit_settings_hash

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


def known_versions(context, dimension: str, versions: dict[str, str]):
    """An observe function's result: the versions of the partitions already registered."""
    known = set(context.instance.get_dynamic_partitions(dimension))
    return dg.DataVersionsByPartition({k: dg.DataVersion(v) for k, v in versions.items() if k in known})
