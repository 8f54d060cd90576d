"""Partition keys as assets see them, however the run was launched."""

import dagster as dg

from am_assets.core.partitions import partition_dimensions


def test_partition_dimensions_from_a_plain_partition_tag():
    """A run launched with only the `dagster/partition` tag (the GraphQL API, a script) hands the asset
    a plain "s01|t1" string; the assets still get the key by dimension."""
    seen = []
    pdef = dg.MultiPartitionsDefinition({"shard": dg.StaticPartitionsDefinition(["s00", "s01"]),
                                         "teacher": dg.StaticPartitionsDefinition(["t1", "t2"])})

    @dg.asset(partitions_def=pdef)
    def probe(context: dg.AssetExecutionContext):
        seen.append((context.partition_key, partition_dimensions(context)))

    job = dg.define_asset_job("probe_job", [probe], partitions_def=pdef).resolve(
        asset_graph=dg.Definitions(assets=[probe]).resolve_asset_graph())
    assert job.execute_in_process(tags={"dagster/partition": "s01|t2"}).success
    assert seen == [("s01|t2", {"shard": "s01", "teacher": "t2"})] and type(seen[0][0]) is str

    # with the per-dimension tags the UI adds, Dagster builds the MultiPartitionKey itself
    assert job.execute_in_process(tags={"dagster/partition": "s00|t1", "dagster/partition/shard": "s00",
                                        "dagster/partition/teacher": "t1"}).success
    assert isinstance(seen[1][0], dg.MultiPartitionKey) and seen[1][1] == {"shard": "s00", "teacher": "t1"}

