"""verifier_audit (unpartitioned): a seeded sample of verdicts per (source, category, verifier),
re-checked by a second method (am_assets/verify/audit.py). Reads every partition of
verification_outcomes through the lake, pinned to one Delta version per input table."""

import hashlib
import json

import dagster as dg
import polars as pl

from am_assets.verify import audit
from resources.lake import LakeResource, materialize_result
from resources.pipeline import PipelineConfigResource
from resources.sandbox import SandboxResource

TABLE = "verifier_audit"
INPUTS = ("verification_outcomes", "teacher_responses", "unique_queries")


def audit_settings_hash(cfg) -> str:
    """What the audit reads besides its inputs: sample size, seed and the code re-run's settings."""
    v = cfg.verification
    spec = {"sample": v.audit_sample, "seed": v.audit_seed, "thresholds": v.thresholds,
            "code": [v.code_max_tests, v.code_timeout_s]}
    return hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=8).hexdigest()


@dg.observable_source_asset(group_name="verify", description=(
    "The audit settings (verification.audit_sample, audit_seed, thresholds); data version = their hash, so a "
    "change makes only verifier_audit stale."))
def audit_settings(context, pipeline: PipelineConfigResource) -> dg.DataVersion:
    return dg.DataVersion(audit_settings_hash(pipeline.load()))


def load_sample(lake: LakeResource, versions: dict[str, int], per_group: int, seed: int) -> pl.DataFrame:
    """The sampled outcomes joined with their query (source, reference) and response text."""
    queries = (lake.scan("unique_queries", version=versions["unique_queries"])
               .select("query_id", "source", "reference_answer", "test_cases", "metadata")
               .unique("query_id", keep="first"))
    outcomes = (lake.scan("verification_outcomes", version=versions["verification_outcomes"])
                .select(audit.SAMPLE_COLUMNS)
                .join(queries.select("query_id", "source"), on="query_id", how="left"))
    sample = audit.sample_verdicts(outcomes, per_group, seed)
    responses = (lake.scan("teacher_responses", version=versions["teacher_responses"])
                 .filter(pl.col("response_id").is_in(sample["response_id"].implode()))
                 .select("response_id", "response", "answer", "truncated", "finish_reason").collect())
    full = queries.filter(pl.col("query_id").is_in(sample["query_id"].drop_nulls().implode())).collect()
    return (sample.join(responses, on="response_id", how="left")
            .join(full.drop("source"), on="query_id", how="left"))


def code_rerun(sandbox: SandboxResource, vcfg, log) -> audit.CodeRerun:
    """Re-run sampled code responses through the sandbox; None where the re-run gave no verdict."""
    def rerun(rows: list[dict]) -> list[bool | None]:
        from am_assets.verify.code_tests import verify_code

        try:
            box = sandbox.get()
        except Exception as e:  # noqa: BLE001 - no sandbox: the audit says so per row
            log(f"verifier_audit: no sandbox for the code re-run ({e})")
            return [None] * len(rows)
        threshold = vcfg.thresholds.get("code", 0.99)
        mode = getattr(vcfg, "code_score_mode", None)  # score the re-run as the primary run was scored
        verdicts = verify_code(rows, box, vcfg.code_max_tests, vcfg.code_timeout_s,
                               **({"score_mode": mode} if mode else {}))
        return [v.score > threshold if v.status == "ok" else None for v in verdicts]

    return rerun


@dg.asset(
    name=TABLE, group_name="verify", code_version="1",
    deps=[*(dg.AssetDep(t, partition_mapping=dg.AllPartitionMapping()) for t in INPUTS), audit_settings],
    description="A seeded sample of verdicts per (source, category, verifier) re-checked by a second method "
                "(plain Math-Verify, a sandbox re-run); agreement and false-pass / false-fail estimates with "
                "95% Wilson intervals.")
def verifier_audit(context: dg.AssetExecutionContext, lake: LakeResource, pipeline: PipelineConfigResource,
                   sandbox: SandboxResource) -> dg.MaterializeResult:
    vcfg = pipeline.load().verification
    versions = {t: lake.version(t) for t in INPUTS}
    missing = [t for t, v in versions.items() if v is None]
    if missing:
        raise FileNotFoundError(f"lake tables {missing} do not exist under {lake.root}; materialize them first")
    sample = load_sample(lake, versions, vcfg.audit_sample, vcfg.audit_seed)
    rows = audit.second_opinions(sample, code_rerun=code_rerun(sandbox, vcfg, context.log.warning))
    version = lake.write_partition(TABLE, rows, None, context=context,
                                   extra_metadata={f"{t}_version": v for t, v in versions.items()})
    summary = audit.summarize(rows)
    context.log.info(f"audited {rows.height} verdicts in {summary.height} groups")
    compared = rows.filter(pl.col("agree").is_not_null())
    return materialize_result(lake, TABLE, rows, version, {
        "audit": dg.MetadataValue.md(audit.markdown(summary)),
        "sampled": rows.height, "compared": compared.height,
        "disagreements": int((~compared["agree"]).sum()) if compared.height else 0,
        "sample_per_group": vcfg.audit_sample, "seed": vcfg.audit_seed,
        "input_versions": dg.MetadataValue.json(versions),
    })
