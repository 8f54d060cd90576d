"""verification_outcomes [teacher x shard]: one verdict row per teacher response."""
import dagster as dg
import polars as pl

from am_assets.core.partitions import partition_dimensions, teacher_shard_partitions
from am_assets.verify.cache import appended_rows
from am_assets.verify.health import health_metadata, health_verdict, verifier_health
from am_assets.verify.judging import Judge
from am_assets.verify.logic import OUTCOME_SCHEMA, summary, verify_new_rows, verify_partition
from am_assets.verify.repetition import read_state, write_state
from am_assets.verify.stamp import PartitionInputs
from resources.engines import EnginesResource
from resources.judge import JudgeResource
from resources.lake import COMPACT_FILES, LakeResource, materialize_result
from resources.pipeline import PipelineConfigResource
from resources.sandbox import SandboxResource

GROUP = "verify"
TABLE = "verification_outcomes"


def build_verification_outcomes(cfg) -> dg.AssetsDefinition:
    pdef = teacher_shard_partitions(cfg.shards)

    # The check is evaluated in the asset's own step, from the rows it just wrote: a separate check step
    # read the partition again and cost a second step per run (~5 stored events), on each of the 32
    # verification runs of adding a source. partitions_def on a check spec is a preview in Dagster
    # 1.13, but it is what records one evaluation per teacher x shard.
    @dg.asset(
        name=TABLE, partitions_def=pdef, group_name=GROUP, code_version="1",
        check_specs=[dg.AssetCheckSpec(
            "verifier_health", asset=TABLE, partitions_def=pdef, blocking=False,
            description="ERROR when a verifier's share of unparseable, verifier_error or timeout rows in the "
                        "partition is above verification.max_failure_share (default 5%).")],
        deps=[dg.AssetDep("teacher_responses", partition_mapping=dg.IdentityPartitionMapping()),
              dg.AssetDep("unique_queries",
                          partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="shard"))],
        description="verify_score, passed, verifier + version, status and details per teacher response, with "
                    "quality flags. Verdicts are cached by (response_id, verifier_version).")
    def verification_outcomes(context: dg.AssetExecutionContext, lake: LakeResource, pipeline: PipelineConfigResource,
                              sandbox: SandboxResource, judge: JudgeResource,
                              engines: EnginesResource) -> dg.MaterializeResult:
        cfg = pipeline.load()
        keys = partition_dimensions(context)
        part = {"teacher": keys["teacher"], "shard": keys["shard"]}
        queries = lake.read("unique_queries", {"shard": part["shard"]})
        cached = lake.read(TABLE, part)
        judged = Judge(judge, cfg, engines)  # a judge may run on vLLM: in the step's model pool
        judge_version = judged.version()
        state = read_state(lake, part)
        inputs = PartitionInputs.open(lake, part, cfg.verification, judge_version, queries)
        run = dict(sandbox_factory=sandbox.get, judge=judged, judge_version=judge_version, log=context.log.info,
                   models=engines.pool, ngram_state=state)
        df, added, stats, read = _outcomes(lake, inputs, queries, cached, cfg.verification, run, context.log)
        version, written = _write(lake, df, added, part, context)
        if "ngram_update" in stats:  # after the outcomes: counts ahead of them would not match their rows
            write_state(lake, part, stats["ngram_update"], state, context)
        if df.height:
            inputs.write_stamp(lake, df, version, context)
        # one line per partition: each log line is a stored event (~5 ms), for each of 32 partitions
        flipped = f" ({stats['flipped']} stored rows newly repetitive)" if "flipped" in stats else ""
        counts = f"; n-gram counts: {stats['ngram_count']}" if "ngram_count" in stats else ""
        context.log.info(f"{part}: responses read: {read}{flipped}; {stats['verified']} verified, "
                         f"{stats['reused']} reused from the cache; {written}{counts}")
        health = verifier_health(df)
        verifiers = dg.MetadataValue.json(health_metadata(health))
        return materialize_result(lake, TABLE, df, version, {
            **{k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in summary(df).items()},
            "verifier_health": verifiers,
            "verified": stats["verified"], "reused_from_cache": stats["reused"], "responses_read": read,
            "stored_rows_flagged_repetitive": stats.get("flipped", 0),
        }, check_results=[_health_check(health, verifiers, cfg.verification.max_failure_share)])

    return verification_outcomes


def _health_check(health: pl.DataFrame, verifiers, max_share: float) -> dg.AssetCheckResult:
    passed, text = health_verdict(health, max_share)
    return dg.AssetCheckResult(check_name="verifier_health", passed=passed, severity=dg.AssetCheckSeverity.ERROR,
                               description=text, metadata={"max_failure_share": max_share, "summary": text,
                                                           "verifiers": verifiers})


def _outcomes(lake: LakeResource, inputs: PartitionInputs, queries: pl.DataFrame, cached: pl.DataFrame, vcfg,
              run: dict, log) -> tuple[pl.DataFrame, pl.DataFrame | None, dict, str]:
    """(the partition's outcome rows; the rows to append when the stored ones are unchanged, else None;
    stats; what was read). Only the responses added since the last run when stamp.py allows it, else
    the whole partition."""
    added, why = inputs.new_rows(lake, cached)
    fast = added is not None and verify_new_rows(added, queries, cached, vcfg,
                                                 stored_texts=lambda: inputs.stored_texts(lake, cached), **run)
    if fast:
        df, new_rows, stats = fast
        return df, new_rows, stats, "new files only"
    if added is not None:
        why = "the stored n-gram counts, a response id or a perplexity need the stored texts"
    log.info(f"{inputs.part}: reading the whole partition ({why})")
    responses = inputs.read_all(lake)
    if responses.height == 0:
        log.warning(f"no teacher_responses rows for {inputs.part}: writing an empty partition")
        return _empty_outcomes(), None, {"verified": 0, "reused": 0}, f"whole partition: {why}"
    df, stats = verify_partition(responses, queries, cached, vcfg, **run)
    return df, appended_rows(df, cached), stats, f"whole partition: {why}"


def _write(lake: LakeResource, df: pl.DataFrame, added: pl.DataFrame | None, part: dict, context) -> tuple[int, str]:
    """(Delta version, what was written). Append only `added`, the new responses' rows, when the stored
    ones are unchanged (a partition of 250k responses gaining 1% is not rewritten); rewrite the
    partition when `added` is None (a stored row changed or left) or past COMPACT_FILES files."""
    if added is None or lake.file_count(TABLE, part) > COMPACT_FILES:
        return lake.write_partition(TABLE, df, part, context=context), f"wrote the partition ({df.height} rows)"
    if added.height == 0:
        return lake.version(TABLE), "every outcome row is as stored: nothing written"
    version = lake.write_partition(TABLE, added, part, context=context, mode="append", key=["response_id"])
    return version, f"the {df.height - added.height} stored rows are unchanged: appended {added.height}"


def _empty_outcomes():
    return pl.DataFrame(schema=OUTCOME_SCHEMA)
