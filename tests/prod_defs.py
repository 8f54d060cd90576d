"""A tiny code location for the production-profile tests (tests/test_production_profile.py).

One asset over teacher x shard partitions (named like the pipeline's, so the profile's per-asset Ray
request applies) that writes its partition to
the lake through the project's LakeResource and records when it ran (to check the queue's limits).
AM_PROD_HANG=<partition key>: the first run of that partition hangs (after logging its pid to a
file) so the test can SIGKILL its worker; the retry finds the file and finishes.
"""

import os
import time
from pathlib import Path

import dagster as dg
import polars as pl

from resources.lake import LakeResource, materialize_result

teachers = dg.DynamicPartitionsDefinition(name="teacher")
parts = dg.MultiPartitionsDefinition({"teacher": teachers, "shard": dg.StaticPartitionsDefinition(["s00", "s01", "s02"])})
ROWS = 5


@dg.asset(partitions_def=parts, code_version="1")
def verification_outcomes(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    key = context.partition_key.keys_by_dimension
    started = time.time()
    hang = os.environ.get("AM_PROD_HANG") == str(context.partition_key)
    marker = Path(os.environ.get("AM_PROD_MARKERS", "/nonexistent")) / f"{key['teacher']}-{key['shard']}.pid"
    if hang and not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(600)  # killed by the test
    time.sleep(float(os.environ.get("AM_PROD_SLEEP", "1.5")))
    df = pl.DataFrame({"item": [f"{key['shard']}-{i}" for i in range(ROWS)], "passed": [i % 2 == 0 for i in range(ROWS)],
                       "run_id": context.run.run_id, "started": started, "ended": time.time()})
    version = lake.write_partition("outcomes", df, key, context=context)
    return materialize_result(lake, "outcomes", df, version)


defs = dg.Definitions(assets=[verification_outcomes], executor=dg.in_process_executor,
                      resources={"lake": LakeResource(root=dg.EnvVar("AM_PROD_LAKE"))})
