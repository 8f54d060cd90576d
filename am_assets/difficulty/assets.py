"""difficulty_settings -> difficulty_scores [shard]: fan-in over every teacher's verification outcomes."""
import time

import dagster as dg

from am_assets.difficulty.logic import (
    OUTCOME_COLUMNS, difficulty_table, level_counts, pass_rate_column, teachers_from_config)
from am_assets.core.partitions import shard_partitions
from resources.lake import LakeResource, materialize_result
from resources.pipeline import PipelineConfigResource

GROUP = "difficulty"


def difficulty_settings_hash(cfg) -> str:
    """What changes difficulty_scores besides its inputs: the difficulty section, the pass thresholds
    and the teachers' order (weak -> strong)."""
    teachers, _ = teachers_from_config(cfg)
    return cfg.difficulty.config_hash({"thresholds": cfg.verification.thresholds, "teachers": teachers})


@dg.observable_source_asset(group_name=GROUP, description=(
    "Settings that grade difficulty (difficulty section, verification.thresholds, teacher order); "
    "data version = their hash, so a change makes every difficulty_scores shard stale."))
def difficulty_settings(context, pipeline: PipelineConfigResource) -> dg.DataVersion:
    return dg.DataVersion(difficulty_settings_hash(pipeline.load()))


def build_difficulty_scores(cfg) -> dg.AssetsDefinition:
    @dg.asset(
        name="difficulty_scores",
        partitions_def=shard_partitions(cfg.shards),
        deps=[dg.AssetDep("verification_outcomes", partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
            partition_dimension_name="shard")), difficulty_settings],
        group_name=GROUP, code_version="1",
        description=("Per query of the shard: pass rate per teacher (share of scored samples above the "
                     "category threshold), CV of the reference teacher's scores, max score, sample counts, "
                     "difficulty level (easy | medium | hard | unsolved)."),
    )
    def difficulty_scores(context: dg.AssetExecutionContext, lake: LakeResource,
                          pipeline: PipelineConfigResource) -> dg.MaterializeResult:
        cfg = pipeline.load()
        shard = context.partition_key
        teachers, reference = teachers_from_config(cfg)
        if not teachers:
            raise ValueError(f"{pipeline.path}: no teachers configured; difficulty needs at least one")
        src_version = lake.version("verification_outcomes")
        if src_version is None:
            raise FileNotFoundError(f"lake table verification_outcomes does not exist at {lake.uri('verification_outcomes')}")
        started = time.perf_counter()
        outcomes = lake.scan("verification_outcomes", {"shard": shard}, version=src_version).select(OUTCOME_COLUMNS)
        df = difficulty_table(outcomes, teachers=teachers, reference=reference,
                              thresholds=cfg.verification.thresholds, ddof=cfg.difficulty.cv_ddof,
                              easy_pass_rate=cfg.difficulty.easy_pass_rate,
                              scored_statuses=cfg.difficulty.scored_statuses).collect(engine="streaming")
        df = df.sort("query_id")
        context.log.info(f"{shard}: {df.height} queries graded over teachers {teachers} "
                         f"(reference {reference}) in {time.perf_counter() - started:.1f}s")
        version = lake.write_partition("difficulty_scores", df, {"shard": shard}, context=context,
                                       extra_metadata={"verification_outcomes_version": src_version})
        levels = level_counts(df)
        mean_rates = {t: df[pass_rate_column(t)].mean() for t in teachers} if df.height else {}
        no_ref = int(df["ref_samples"].eq(0).sum()) if df.height else 0
        if no_ref:
            context.log.warning(f"{shard}: {no_ref} queries have no scored sample of the reference teacher "
                                f"{reference}; their CV is null")
        return materialize_result(lake, "difficulty_scores", df, version, {
            "levels": dg.MetadataValue.json(levels),
            "teachers": dg.MetadataValue.json(teachers),
            "reference_teacher": reference,
            "mean_pass_rate": dg.MetadataValue.json({t: (None if v is None else round(float(v), 4))
                                                     for t, v in mean_rates.items()}),
            "mean_cv": float(df["cv"].mean()) if df.height and df["cv"].null_count() < df.height else None,
            "queries_without_reference_samples": no_ref,
            "verification_outcomes_version": src_version,
            "settings_hash": difficulty_settings_hash(cfg),
        }, column_lineage=dg.TableColumnLineage(deps_by_column={
            col: [dg.TableColumnDep(asset_key=dg.AssetKey("verification_outcomes"), column_name="verify_score")]
            for col in ["cv", "max_score", "level", "pass_rates", *(pass_rate_column(t) for t in teachers)]
        }))

    return difficulty_scores
