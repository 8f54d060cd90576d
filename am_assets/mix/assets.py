"""mix_settings -> training_mix: Stage I / Stage II selection, exports and the data card."""
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Callable

import dagster as dg
import polars as pl

from am_assets.difficulty.api import teachers_from_config
from am_assets.mix.append import EXPORTS_KEY, ROWS_KEY, SUM_KEY, export_sizes, plan_append, row_hash_sum, rows_digest
from am_assets.mix.sharded import emit_mix, select_mix
from am_assets.mix.card import write_card
from am_assets.mix.export import LINEAGE_COLUMNS, ExportWriter
from am_assets.mix.select import decision_counts
from am_assets.verify.api import audit_markdown
from resources.config import AM_SYSTEM_PROMPT
from resources.config import shard_key
from resources.instance import file_lock
from resources.lake import LakeResource, add_hash_sums, materialize_result
from resources.pipeline import PipelineConfigResource

GROUP = "mix"
INPUTS = ("unique_queries", "teacher_responses", "verification_outcomes", "difficulty_scores")
TABLE_COLUMNS = ["messages", *LINEAGE_COLUMNS, "question", "think", "answer", "reference_answer", "test_cases",
                 "instruction_constraints", "threshold", "completion_tokens", "prompt_tokens", "content_key"]


def mix_settings_hash(cfg) -> str:
    """Every setting the selection reads: the mix section, the pass thresholds, the scored statuses
    and the teachers (order, reference). None of it is part of an upstream asset's data version."""
    teachers, reference = teachers_from_config(cfg)
    spec = {"mix": cfg.mix.config_hash(), "thresholds": cfg.verification.thresholds, "teachers": teachers,
            "reference": reference, "scored": cfg.difficulty.scored_statuses,
            "prompts": {t.name: t.system_prompt for t in cfg.teachers}}
    return hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=8).hexdigest()


@dg.observable_source_asset(group_name=GROUP, description=(
    "The selection settings (mix section, thresholds); data version = their hash, so changing a threshold, "
    "quota or seed makes only training_mix stale."))
def mix_settings(context, pipeline: PipelineConfigResource) -> dg.DataVersion:
    return dg.DataVersion(mix_settings_hash(pipeline.load()))


@dg.asset(
    deps=[dg.AssetDep("difficulty_scores", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("teacher_responses", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("verification_outcomes", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("unique_queries", partition_mapping=dg.AllPartitionMapping()),
          mix_settings],
    group_name=GROUP, code_version="1",
    description=("The SFT training mix (DeepDistill Stage I, optional Stage II) with lineage; exports "
                 "(AM 1.4M JSONL, TRL messages JSONL, Parquet) and a data card in mix.export_dir."),
)
def training_mix(context: dg.AssetExecutionContext, lake: LakeResource,
                 pipeline: PipelineConfigResource) -> dg.MaterializeResult:
    cfg = pipeline.load()
    teachers, reference = teachers_from_config(cfg)
    if not teachers:
        raise ValueError(f"{pipeline.path}: no teachers configured; the mix needs at least one")
    versions = {t: lake.version(t) for t in INPUTS}
    missing = [t for t, v in versions.items() if v is None]
    if missing:
        raise FileNotFoundError(f"lake tables {missing} do not exist under {lake.root}; materialize them first")
    pool_teachers = [reference] if cfg.mix.response_teachers == "reference" else teachers
    settings_hash = mix_settings_hash(cfg)
    extra = {"input_versions": json.dumps(versions, sort_keys=True), "mix_config_hash": settings_hash}
    export_dir = cfg.mix.export_dir
    started = time.perf_counter()
    scans, shards = _shard_scans(lake, versions), [shard_key(i) for i in range(cfg.shards)]
    narrow, decisions, drops = select_mix(scans, shards, mix=cfg.mix, pool_teachers=pool_teachers,
                                          thresholds=cfg.verification.thresholds,
                                          scored_statuses=cfg.difficulty.scored_statuses)
    context.log.info(f"selected {narrow.height} rows from {decisions.height} queries in "
                     f"{time.perf_counter() - started:.1f}s (teachers {pool_teachers}); drops {drops}")
    export_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(export_dir / ".lock"):  # one mix at a time writes these exports
        added, stored, why = plan_append(lake, narrow, scans, shards, settings_hash=settings_hash,
                                         export_dir=export_dir, columns=TABLE_COLUMNS)
        context.log.info(f"appending {added.height} rows to the {stored[ROWS_KEY]} stored" if added is not None
                         else f"building every row ({why})")
        sink, files, version = _write_mix(lake, scans, shards, narrow if added is None else added, stored,
                                          append=added is not None, extra=extra, versions=versions, cfg=cfg,
                                          context=context)
    table = sink.empty()  # schema for the metadata; the rows were streamed
    stats, card_md, plots = write_card(
        narrow, decisions, lake.scan("difficulty_scores", version=versions["difficulty_scores"]), teachers=teachers, cv_threshold=cfg.mix.cv_threshold,
        config=cfg.mix.model_dump(mode="json"), input_versions=versions, export_dir=export_dir,
        audit_md=audit_markdown(lake))
    context.log.info(f"exports in {export_dir}: {sorted(p.name for p in files.values())}")

    result = materialize_result(lake, "training_mix", table, version, {
        "data_card": dg.MetadataValue.md(card_md),
        "data_card_path": dg.MetadataValue.path(str(export_dir / "DATA_CARD.md")),
        **{f"plot_{name}": dg.MetadataValue.path(str(p)) for name, p in plots.items()},
        **{f"export_{name}": dg.MetadataValue.path(str(p)) for name, p in files.items()},
        "rows_by_stage": dg.MetadataValue.json(stats["by_stage"]),
        "rows_by_category_stage": dg.MetadataValue.json(stats["by_category_stage"]),
        "rows_by_teacher_stage": dg.MetadataValue.json(stats["by_teacher_stage"]),
        "stage1_decisions": dg.MetadataValue.json(decision_counts(decisions)),
        "dropped_after_selection": dg.MetadataValue.json(drops),
        "tokens": stats["tokens"],
        "input_versions": dg.MetadataValue.json(versions),
        "mix_config_hash": settings_hash,
        "dagster/row_count": sink.rows, "appended": added is not None,
        "appended_rows": added.height if added is not None else 0,
    }, column_lineage=dg.TableColumnLineage(deps_by_column={
        "messages": [dg.TableColumnDep(asset_key=dg.AssetKey("teacher_responses"), column_name="response"),
                     dg.TableColumnDep(asset_key=dg.AssetKey("unique_queries"), column_name="question")],
        "verify_score": [dg.TableColumnDep(asset_key=dg.AssetKey("verification_outcomes"), column_name="verify_score")],
        "cv": [dg.TableColumnDep(asset_key=dg.AssetKey("difficulty_scores"), column_name="cv")],
        "pass_rates": [dg.TableColumnDep(asset_key=dg.AssetKey("difficulty_scores"), column_name="pass_rates")],
    }))
    # content only: a changed setting that selects the same rows must not retrain or re-evaluate
    return dg.MaterializeResult(metadata=result.metadata, data_version=dg.DataVersion(sink.content_hash()))


def _write_mix(lake: LakeResource, scans, shards: list[str], rows: pl.DataFrame, stored: dict, *, append: bool,
               extra: dict, versions: dict, cfg, context) -> tuple["_ShardSink", dict, int]:
    """Pass 2 over `rows` (every kept row, or the ones to append), the exports and the Delta commit,
    which records the export sizes and the row-hash sum that the next append checks and extends."""
    export_dir = cfg.mix.export_dir
    # shard by shard (am_assets/mix/sharded.py): each shard's rows with text are staged as Parquet and
    # appended to the exports, then committed to Delta in one streamed write; memory = one shard
    with tempfile.TemporaryDirectory(prefix="training_mix-") as staging:
        sink = _ShardSink(Path(staging), ExportWriter(export_dir, append=append), extra)
        if append:
            sink.schema = dict(lake.scan("training_mix").collect_schema())
            sink.rows, sink.hash_sum = int(stored[ROWS_KEY]), int(stored[SUM_KEY])
        try:
            emit_mix(scans, shards, rows, system_prompts={t.name: t.system_prompt for t in cfg.teachers},
                     default_system_prompt=AM_SYSTEM_PROMPT, sink=sink)
            files = sink.exports.close()
            meta = {**{f"{t}_version": v for t, v in versions.items()}, SUM_KEY: str(sink.hash_sum),
                    EXPORTS_KEY: json.dumps(export_sizes(export_dir)), ROWS_KEY: str(sink.rows)}
            if append and not sink.paths:
                version = stored["version"]  # nothing new was selected: the table is as it was
            elif sink.paths:
                version = lake.overwrite_from_parquet("training_mix", sink.paths, context=context, extra_metadata=meta,
                                                      append_to=stored["version"] if append else None)
            else:
                version = lake.write_partition("training_mix", sink.empty(), None, context=context,
                                               extra_metadata=meta)
        except BaseException:
            sink.exports.rollback()
            raise
    return sink, files, version


def _shard_scans(lake: LakeResource, versions: dict[str, int]) -> Callable[[str], dict[str, pl.LazyFrame]]:
    """shard -> one shard of every input, pinned to the versions recorded in the lineage (a concurrent
    write cannot mix versions). One scan per table, filtered per shard: each new scan reads the Delta
    log again (~70 ms; 4 tables x shards x 2 passes)."""
    tables = {t: lake.scan(t, version=v) for t, v in versions.items()}
    return lambda shard: {t: lf.filter(pl.col("shard") == shard) for t, lf in tables.items()}


class _ShardSink:
    """Receives each shard's final rows: stages the table rows as Parquet, appends the exports and
    keeps the count and the sum of the row hashes (the data version: append.rows_digest)."""

    def __init__(self, staging: Path, exports: ExportWriter, extra: dict[str, str]):
        self.staging, self.exports, self.extra = staging, exports, extra
        self.paths: list[str] = []
        self.hash_sum = 0
        self.rows = 0
        self.schema: dict | None = None

    def __call__(self, shard: str, rows: pl.DataFrame) -> None:
        rows = rows.with_columns(*(pl.lit(v).alias(k) for k, v in self.extra.items()))
        table = rows.select(TABLE_COLUMNS)
        # a column that is all null in one shard must keep the type the others give it
        table = table.with_columns(pl.col(c).cast(pl.String) for c, t in table.schema.items() if t == pl.Null)
        if self.schema is None:
            self.schema = dict(table.schema)
        table = table.cast(self.schema)
        path = self.staging / f"{shard}.parquet"
        table.write_parquet(path)
        self.paths.append(str(path))
        self.hash_sum = add_hash_sums(self.hash_sum, row_hash_sum(table))
        self.rows += table.height
        self.exports.write(rows)

    def empty(self) -> pl.DataFrame:
        if self.schema is not None:
            return pl.DataFrame(schema=self.schema)
        return pl.DataFrame(schema={c: pl.String for c in TABLE_COLUMNS})

    def content_hash(self) -> str:
        return rows_digest(self.empty().schema, self.rows, self.hash_sum)
