"""verification_outcomes [teacher x shard]: one verdict row per teacher response."""
import dagster as dg

from am_assets.partitions import partition_dimensions, teacher_shard_partitions
from am_assets.verify.logic import OUTCOME_SCHEMA, summary, verify_partition
from resources.engines import engines_in_use
from resources.judge import JudgeResource
from resources.lake import LakeResource, materialize_result
from resources.pipeline import PipelineConfigResource
from resources.sandbox import SandboxResource

GROUP = "verify"
TABLE = "verification_outcomes"


def build_verification_outcomes(cfg) -> dg.AssetsDefinition:
    @dg.asset(
        name=TABLE, partitions_def=teacher_shard_partitions(cfg.shards), group_name=GROUP, code_version="1",
        deps=[dg.AssetDep("teacher_responses", partition_mapping=dg.IdentityPartitionMapping()),
              dg.AssetDep("unique_queries",
                          partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="shard"))],
        description="verify_score, passed, verifier + version, status and details per teacher response, with "
                    "quality flags. Verdicts are cached by (response_id, verifier_version).")
    def verification_outcomes(context: dg.AssetExecutionContext, lake: LakeResource, pipeline: PipelineConfigResource,
                              sandbox: SandboxResource, judge: JudgeResource) -> dg.MaterializeResult:
        cfg = pipeline.load()
        keys = partition_dimensions(context)
        part = {"teacher": keys["teacher"], "shard": keys["shard"]}
        responses = lake.read("teacher_responses", part)
        if responses.height == 0:
            context.log.warning(f"no teacher_responses rows for {part}: writing an empty partition")
            responses = None
        queries = lake.read("unique_queries", {"shard": part["shard"]})
        cached = lake.read(TABLE, part)
        if responses is None:
            df, stats = _empty_outcomes(), {"verified": 0, "reused": 0}
        else:
            with engines_in_use():  # a judge may run on vLLM
                df, stats = verify_partition(responses, queries, cached, cfg.verification, sandbox_factory=sandbox.get,
                                             judge=judge, judge_version=judge.version(), log=context.log.info)
        version = lake.write_partition(TABLE, df, part, context=context)
        context.log.info(f"{part}: {stats['verified']} verified, {stats['reused']} reused from the cache")
        return materialize_result(lake, TABLE, df, version, {
            **{k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in summary(df).items()},
            "verified": stats["verified"], "reused_from_cache": stats["reused"],
        })

    return verification_outcomes


def _empty_outcomes():
    import polars as pl

    return pl.DataFrame(schema=OUTCOME_SCHEMA)
