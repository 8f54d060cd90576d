"""teacher_config [teacher] -> teacher_responses [teacher x shard]."""
import dagster as dg

from am_assets.distill.generate import TABLE, fill_partition
from am_assets.distill.logic import RETRYABLE, eligible_queries, summary
from am_assets.core.partitions import partition_dimensions, teacher_partitions, teacher_shard_partitions
from am_assets.core.versions import known_versions, teacher_versions
from resources.engines import EnginesResource
from resources.lake import LakeResource, materialize_result
from resources.pipeline import PipelineConfigResource

GROUP = "distill"
RETRY_TAG = "am-distill/retry-metadata"  # names the materialization metadata entry that counts rows to retry
UNIQUE_QUERIES = dg.AssetKey("unique_queries")


@dg.observable_source_asset(partitions_def=teacher_partitions, group_name=GROUP,
                            description="The registered teachers; data version = the teacher's fingerprint "
                                        "(model + sampling + prompt), so editing one teacher stales only its partitions.")
def teacher_config(context, pipeline: PipelineConfigResource) -> dg.DataVersionsByPartition:
    return known_versions(context, "teacher", teacher_versions(pipeline.load()))


def build_teacher_responses(n_shards: int) -> dg.AssetsDefinition:
    @dg.asset(
        name=TABLE, partitions_def=teacher_shard_partitions(n_shards), group_name=GROUP, code_version="1",
        tags={RETRY_TAG: RETRYABLE},  # failed rows with attempts left make a partition due (sensors/automation.py)
        deps=[dg.AssetDep(UNIQUE_QUERIES, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("shard")),
              dg.AssetDep(teacher_config, partition_mapping=dg.MultiToSingleDimensionPartitionMapping("teacher"))],
        description="n samples per representative, uncontaminated query of the shard from one teacher; "
                    "row key (query_id, fingerprint, sample_idx); only missing keys are generated, in "
                    "committed chunks, so a killed run resumes. Failed rows (status 'error') are retried by "
                    "later runs up to the teacher's max_attempts.")
    def teacher_responses(context: dg.AssetExecutionContext, lake: LakeResource, pipeline: PipelineConfigResource,
                          engines: EnginesResource) -> dg.MaterializeResult:
        keys = partition_dimensions(context)
        teacher, shard = pipeline.teacher(keys["teacher"]), keys["shard"]
        unique = lake.read("unique_queries", {"shard": shard})
        queries = eligible_queries(unique)
        result = fill_partition(lake, teacher, shard, queries, engines=engines, log=context.log.info, context=context)
        stats = summary(result.rows, teacher.max_attempts)
        context.log.info(f"{teacher.name}/{shard}: {stats.get('rows', 0)} rows ({result.kept} kept, "
                         f"{result.generated} generated, {result.removed} removed) in {result.seconds:.1f} s")
        return materialize_result(lake, TABLE, result.rows, result.version, {
            "teacher": teacher.name, "engine": teacher.kind, "fingerprint": teacher.fingerprint(),
            "teacher_config": dg.MetadataValue.json(teacher.model_dump(mode="json")),
            "queries": queries.height, "kept": result.kept, "generated": result.generated,
            "removed": result.removed, "errors": stats["errors"], RETRYABLE: stats[RETRYABLE],
            "max_attempts": teacher.max_attempts, "truncated": stats.get("truncated", 0),
            "completion_tokens": stats.get("completion_tokens", 0),
            "tokens_per_s": round(result.completion_tokens / max(result.seconds, 1e-9), 1),
        }, column_lineage=dg.TableColumnLineage(deps_by_column={
            "query_id": [dg.TableColumnDep(asset_key=UNIQUE_QUERIES, column_name="query_id")],
            "response": [dg.TableColumnDep(asset_key=UNIQUE_QUERIES, column_name="question")],
        }))

    return teacher_responses
