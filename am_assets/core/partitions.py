"""Partition definitions, declared once.

`source`, `teacher`, `benchmark` and `model` are dynamic (fed by sensors and the CLI from
pipeline.yaml); `shard` is static, its count read from the config when definitions load.
"""

from __future__ import annotations

import dagster as dg

from resources.config import shard_key
from resources.instance import add_partitions

source_partitions = dg.DynamicPartitionsDefinition(name="source")
teacher_partitions = dg.DynamicPartitionsDefinition(name="teacher")
benchmark_partitions = dg.DynamicPartitionsDefinition(name="benchmark")
model_partitions = dg.DynamicPartitionsDefinition(name="model")

# an asset whose runs add partitions to a dynamic dimension names it in this tag (train's model_registry
# adds `model`): the CLI runner runs it before every asset partitioned on that dimension
ADDS_PARTITIONS_TAG = "am-distill/adds-partitions"


def shard_partitions(n: int) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition([shard_key(i) for i in range(n)])


def teacher_shard_partitions(n: int) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({"teacher": teacher_partitions, "shard": shard_partitions(n)})


def model_benchmark_partitions() -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({"model": model_partitions, "benchmark": benchmark_partitions})


def partition_dimensions(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The run's multi-partition key by dimension. A run launched with only the `dagster/partition`
    tag (the GraphQL API, scripts) gets a plain "s00|t1" string rather than a MultiPartitionKey."""
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        return key.keys_by_dimension
    return context.assets_def.partitions_def.get_partition_key_from_str(key).keys_by_dimension


def sync_dynamic_partitions(instance: dg.DagsterInstance, cfg) -> dict[str, list[str]]:
    """Register every source, teacher and benchmark named in the config; returns what was added."""
    added = {}
    for name, items in (("source", cfg.all_sources()), ("teacher", cfg.teachers), ("benchmark", cfg.benchmarks)):
        added[name] = add_partitions(instance, name, [i.name for i in items])
    return added
