"""Materialize one teacher_responses partition in its own process (the crash-resume test kills it).

    python -m tests.distill_worker <pipeline.yaml> <teacher> <shard>
"""

import sys

import dagster as dg


def main(config: str, teacher: str, shard: str) -> None:
    from definitions import build_defs
    from tests.conftest import materialize

    with dg.instance_for_test() as instance:
        materialize(build_defs(config), instance, ["teacher_responses"],
                    partition_key=dg.MultiPartitionKey({"teacher": teacher, "shard": shard}))


if __name__ == "__main__":  # vLLM starts its engine in a child process
    main(*sys.argv[1:4])
