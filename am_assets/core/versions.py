"""Data versions of the observable sources: the parts every stage shares.

Each stage defines the versions of its own sources (ingest: `source_versions`, dedup:
`benchmark_versions`, the settings hashes of difficulty, mix and the audit); `am_assets.observed_versions`
gathers them for the registry sensors and the CLI runner, so the assets and the sensors use one definition.
"""

import dagster as dg


def teacher_versions(cfg) -> dict[str, str]:
    return {t.name: t.fingerprint() for t in cfg.teachers}


def known_versions(context, dimension: str, versions: dict[str, str]):
    """An observe function's result: the versions of the partitions already registered."""
    known = set(context.instance.get_dynamic_partitions(dimension))
    return dg.DataVersionsByPartition({k: dg.DataVersion(v) for k, v in versions.items() if k in known})
