"""difficulty_scores and training_mix through Dagster on real questions (GSM8K, MBPP).

The upstream tables (unique_queries, teacher_responses, verification_outcomes) are written with their
contract columns (team RULES.md) through LakeResource.write_partition, as their assets would, and their
partitions reported to Dagster; the lead's full-pipeline test covers the real generation.
"""

import base64
import hashlib
import json

import dagster as dg
import polars as pl
import pytest
from datasets import load_dataset

from am_assets.core.partitions import shard_partitions, sync_dynamic_partitions, teacher_shard_partitions
from resources.config import shard_key
from tests.conftest import shared

TEACHERS = {"weak": 0.35, "strong": 0.75}  # share of correct samples; config order = weak -> strong
SHARDS = 2
N_MATH, N_CODE, SAMPLES = 40, 12, 4


def _h(*parts) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).hexdigest()


def _u(*parts) -> float:
    return int(_h(*parts), 16) / 16**16


def real_queries() -> pl.DataFrame:
    """unique_queries rows (QUERY_SCHEMA + dedup columns) from GSM8K test and MBPP."""
    from am_assets.core.schema import query_id

    gsm = pl.read_ndjson(shared("gsm8k/test.jsonl")).head(N_MATH)
    mbpp = pl.read_ndjson(shared("code/mbpp.jsonl")).head(N_CODE)
    rows = [{"source": "gsm8k", "category": "math", "question": r["question"], "row": i,
             "reference_answer": r["answer"].split("####")[-1].strip(), "test_cases": None}
            for i, r in enumerate(gsm.iter_rows(named=True))]
    rows += [{"source": "mbpp", "category": "code", "question": r["text"], "row": r["task_id"], "reference_answer": None,
              "test_cases": json.dumps({"type": "asserts", "setup": r["test_setup_code"], "asserts": r["test_list"]})}
             for r in mbpp.iter_rows(named=True)]
    out = pl.DataFrame([{
        "query_id": query_id(r["question"]), "source": r["source"], "source_file": r["source"] + ".jsonl",
        "source_row": str(r["row"]), "category": r["category"], "question": r["question"],
        "reference_answer": r["reference_answer"], "test_cases": r["test_cases"], "instruction_constraints": None,
        "metadata": "{}", "cluster_id": "c" + query_id(r["question"]), "representative": True, "duplicate_of": None,
        "contaminated_by": None} for r in rows])
    return out.with_columns(pl.col("query_id").map_elements(lambda q: shard_key(int(q[1:9], 16) % SHARDS),
                                                            return_dtype=pl.String).alias("shard"))


def teacher_tables(queries: pl.DataFrame, teacher: str, accuracy: float, fingerprint: str):
    """teacher_responses and verification_outcomes rows of one teacher (contract columns)."""
    resp, ver = [], []
    for q in queries.iter_rows(named=True):
        for i in range(SAMPLES):
            rid = "r" + _h(q["query_id"], fingerprint, i)
            u = _u(q["query_id"], teacher, i)
            if q["category"] == "math":
                score = 1.0 if u < accuracy else 0.0
                answer = f"\\boxed{{{q['reference_answer'] if score else q['reference_answer'] + '1'}}}"
            else:  # code: share of the test cases passed
                n_tests = len(json.loads(q["test_cases"])["asserts"])
                passed = sum(_u(q["query_id"], teacher, i, j) < accuracy + 0.15 for j in range(n_tests))
                score = passed / n_tests
                answer = "```python\ndef solution():\n    pass\n```"
            think = f"Let me work through the problem step by step. Sample {i} of {teacher}."
            truncated = (i == 3 and u > 0.9)
            has_think = not (i == 2 and u > 0.9)
            text = (f"<think>{think}</think>\n" if has_think else "") + f"<answer>{answer}</answer>"
            resp.append({"response_id": rid, "query_id": q["query_id"], "sample_idx": i, "fingerprint": fingerprint,
                         "model": f"smollm2-135m-{teacher}", "engine": "vllm", "sampling": json.dumps({"n": SAMPLES}),
                         "response": text, "think": think if has_think else None, "answer": answer,
                         "finish_reason": "length" if truncated else "stop", "truncated": truncated,
                         "prompt_tokens": 60, "completion_tokens": 20 + len(text) // 4, "latency_s": 0.1,
                         "status": "ok", "error": None})
            ver.append({"response_id": rid, "query_id": q["query_id"], "category": q["category"],
                        "verify_score": score, "passed": score > 0.99,
                        "verifier": "math_verify" if q["category"] == "math" else "sandbox", "verifier_version": "1",
                        "status": "ok", "details": "{}", "has_think": has_think, "has_answer": True,
                        "truncated": truncated, "repetitive": False, "perplexity": None})
    return pl.DataFrame(resp), pl.DataFrame(ver)


def upstream_specs(defs: dg.Definitions) -> list:
    """Specs for upstream assets whose stage is not in this tree yet (other engineers build them)."""
    have = {k for a in defs.assets for k in (a.keys if isinstance(a, dg.AssetsDefinition) else [a.key])}
    wanted = {"unique_queries": shard_partitions(SHARDS), "teacher_responses": teacher_shard_partitions(SHARDS),
              "verification_outcomes": teacher_shard_partitions(SHARDS)}
    return [dg.AssetSpec(k, partitions_def=p) for k, p in wanted.items() if dg.AssetKey(k) not in have]


def _typed(df: pl.DataFrame) -> pl.DataFrame:
    """All-null columns get their contract type (Delta has no Null type)."""
    return df.with_columns([pl.col(c).cast(pl.Float64 if c == "perplexity" else pl.String)
                            for c, t in df.schema.items() if t == pl.Null])


def write_upstream(project, instance, queries: pl.DataFrame) -> None:
    cfg = project.cfg()
    lake = project.lake()
    # stands in for the global dedup the shards were read from (unique_queries' upstream)
    instance.report_runless_asset_event(dg.AssetMaterialization("dedup_clusters"))
    for shard in cfg.shard_keys():
        part = queries.filter(pl.col("shard") == shard).drop("shard")
        lake.write_partition("unique_queries", _typed(part), {"shard": shard})
        instance.report_runless_asset_event(dg.AssetMaterialization("unique_queries", partition=shard))
        for t in cfg.teachers:
            resp, ver = teacher_tables(part, t.name, TEACHERS[t.name], t.fingerprint())
            key = dg.MultiPartitionKey({"teacher": t.name, "shard": shard})
            lake.write_partition("teacher_responses", _typed(resp), {"teacher": t.name, "shard": shard})
            lake.write_partition("verification_outcomes", _typed(ver), {"teacher": t.name, "shard": shard})
            for table in ("teacher_responses", "verification_outcomes"):
                instance.report_runless_asset_event(dg.AssetMaterialization(table, partition=key))


def config(tmp_path, **mix):
    return {"shards": SHARDS,
            "teachers": [{"name": name, "kind": "vllm", "sampling": {"n": SAMPLES, "seed": i}}
                         for i, name in enumerate(TEACHERS)],
            "mix": {"export_dir": str(tmp_path / "exports"), "stage2": True, "stage2_quota": {"math": 5, "code": 2},
                    "seed": 11, **mix}}


def graph(defs) -> dg.Definitions:
    return dg.Definitions(assets=[*defs.assets, *upstream_specs(defs)], resources=defs.resources)


def run(defs, instance, selection, partition_key=None):
    assets = [*defs.assets, *upstream_specs(defs)]
    result = dg.materialize(assets, selection=selection, partition_key=partition_key, instance=instance,
                            resources=defs.resources)
    assert result.success
    return result


def build_everything(project, instance, tmp_path, **mix):
    project.write(config(tmp_path, **mix))
    defs = project.defs()
    sync_dynamic_partitions(instance, project.cfg())
    write_upstream(project, instance, real_queries())
    run(defs, instance, ["difficulty_settings", "mix_settings"])
    for shard in project.cfg().shard_keys():
        run(defs, instance, ["difficulty_scores"], partition_key=shard)
    return defs, run(defs, instance, ["training_mix"])


def test_mix_exports_card_through_dagster(project, instance, tmp_path):
    defs, result = build_everything(project, instance, tmp_path)
    lake = project.lake()
    diff = lake.read("difficulty_scores")
    assert diff.height == N_MATH + N_CODE and diff["query_id"].n_unique() == diff.height
    assert {"pass_rate_weak", "pass_rate_strong", "cv", "level", "max_score"} <= set(diff.columns)
    assert set(diff["level"]) <= {"easy", "medium", "hard", "unsolved"} and diff["samples_strong"].min() == SAMPLES
    assert diff["pass_rate_strong"].mean() > diff["pass_rate_weak"].mean()

    mix = lake.read("training_mix")
    assert mix.height > 0
    assert set(mix["teacher"]) == {"strong"}  # the reference teacher's responses only (default)
    assert set(mix["stage"]) == {"stage1", "stage2"}
    s2 = mix.filter(pl.col("stage") == "stage2")
    assert s2["query_id"].n_unique() == s2.height
    assert dict(s2.group_by("category").len().iter_rows()).get("math", 0) <= 5
    # every kept response passed, and no excluded flag slipped through
    ver = lake.read("verification_outcomes").filter(pl.col("response_id").is_in(mix["response_id"].implode()))
    assert ver["verify_score"].min() > 0.99 and not ver["truncated"].any() and ver["has_think"].all()
    # the Stage I rule on the real table: kept queries had CV > 0.05 (math/code have no `other` branch)
    kept = diff.filter(pl.col("query_id").is_in(mix.filter(pl.col("stage") == "stage1")["query_id"].implode()))
    assert kept["cv"].min() > 0.05
    msgs = json.loads(mix["messages"][0])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert msgs[2]["content"].startswith("<think>\n") and "</think>\n<answer>\n" in msgs[2]["content"]
    versions = json.loads(mix["input_versions"][0])
    assert versions["verification_outcomes"] == lake.version("verification_outcomes")
    assert {"fingerprint", "response_id", "verify_score", "pass_rates", "cv", "source", "selection_reason"} <= set(mix.columns)

    # exports: datasets opens every one, with the right rows
    out = tmp_path / "exports"
    n1, n2 = mix.filter(pl.col("stage") == "stage1").height, s2.height
    for name, n in (("am_1.4m_stage1.jsonl", n1), ("chat_stage1.jsonl", n1), ("am_1.4m_stage2.jsonl", n2),
                    ("chat_stage2.jsonl", n2)):
        ds = load_dataset("json", data_files=str(out / name), split="train")
        assert ds.num_rows == n and "messages" in ds.column_names and "query_id" in ds.column_names
    am = load_dataset("json", data_files=str(out / "am_1.4m_stage1.jsonl"), split="train")[0]
    info = am["messages"][2]["info"]
    assert info["source"] == "strong" and info["think_content"] and info["answer_content"]
    assert am["messages"][0]["role"] == "system" and am["messages"][1]["info"]["source"] in ("gsm8k", "mbpp")
    pq = load_dataset("parquet", data_files=str(out / "training_mix.parquet"), split="train")
    assert pq.num_rows == mix.height and pq[0]["messages"][0]["role"] == "system"

    # the data card matches the table
    card = json.loads((out / "data_card.json").read_text())
    assert card["rows"] == mix.height and card["queries"] == mix["query_id"].n_unique()
    assert card["by_stage"] == dict(mix.group_by("stage").len().iter_rows())
    table_counts = {(c, s): n for c, s, n in mix.group_by("category", "stage").len().iter_rows()}
    assert {(r["category"], r["stage"]): r["rows"] for r in card["by_category_stage"]} == table_counts
    md = (out / "DATA_CARD.md").read_text()
    assert f"**{mix.height} rows**" in md
    assert "## Verifier audit" in md and "verifier_audit has not been materialized yet" in md
    for (cat, stage), n in table_counts.items():
        assert f"| {cat} | {stage} | {n} |" in md
    for plot in ("pass_rates", "cv", "lengths"):
        png = out / "plots" / f"{plot}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mat = result.asset_materializations_for_node("training_mix")[0]
    assert "data:image/png;base64," in mat.metadata["data_card"].value
    b64 = mat.metadata["data_card"].value.split("data:image/png;base64,")[1].split(")")[0]
    assert base64.b64decode(b64)[:4] == b"\x89PNG"
    assert mat.metadata["dagster/row_count"].value == mix.height


@pytest.mark.slow
def test_sft_trainer_reads_the_chat_export(project, instance, tmp_path):
    """TRL's SFTTrainer takes the chat export as is (tokenizes it with the model's chat template)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from resources.models import resolve_model

    build_everything(project, instance, tmp_path)
    ds = load_dataset("json", data_files=str(tmp_path / "exports" / "chat_stage1.jsonl"), split="train")
    path = resolve_model("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(path)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(path), processing_class=tok, train_dataset=ds,
                         args=SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=2,
                                        report_to=[], save_strategy="no", max_length=256,
                                        bf16=False, use_cpu=True))
    assert "input_ids" in trainer.train_dataset.column_names and trainer.train_dataset.num_rows == ds.num_rows
    assert trainer.train().global_step == 1


def test_threshold_change_reruns_only_training_mix(project, instance, tmp_path):
    defs, first = build_everything(project, instance, tmp_path)
    lake = project.lake()
    before = {t: lake.version(t) for t in ("unique_queries", "teacher_responses", "verification_outcomes", "difficulty_scores")}
    mix_before = lake.read("training_mix")
    cursor = dg.evaluate_automation_conditions(defs=graph(defs), instance=instance).cursor

    project.write(config(tmp_path, cv_threshold={"math": 0.9, "code": 0.9}))  # a selection setting only
    defs = project.defs()
    run(defs, instance, ["difficulty_settings", "mix_settings"])  # what the UI/sensor observation does
    evaluation = dg.evaluate_automation_conditions(defs=graph(defs), instance=instance, cursor=cursor)
    requested = {r.key for r in evaluation.results if r.true_subset.size > 0}
    mix_key = dg.AssetKey("training_mix")
    g = graph(defs).resolve_asset_graph()
    upstream = dg.AssetSelection.assets(mix_key).upstream().resolve(g) - {mix_key}
    downstream = dg.AssetSelection.assets(mix_key).downstream().resolve(g)  # e.g. trained_model
    assert mix_key in requested and requested <= downstream and not requested & upstream
    for key in ("teacher_responses", "verification_outcomes", "difficulty_scores", "unique_queries"):
        assert evaluation.get_num_requested(dg.AssetKey(key)) == 0

    result = run(defs, instance, ["training_mix"])
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"training_mix"}
    assert {t: lake.version(t) for t in before} == before  # no upstream table was rewritten
    mix_after = lake.read("training_mix")
    assert mix_after.height < mix_before.height  # CV_t 0.9 keeps only the most spread-out queries
    assert mix_after["mix_config_hash"][0] != mix_before["mix_config_hash"][0]
    old_dv = first.asset_materializations_for_node("training_mix")[0].tags["dagster/data_version"]
    assert result.asset_materializations_for_node("training_mix")[0].tags["dagster/data_version"] != old_dv


@pytest.mark.parametrize("option", ["all"])
def test_all_teachers_option(project, instance, tmp_path, option):
    build_everything(project, instance, tmp_path, response_teachers=option, stage2=False, quota={"math": 10},
                     token_budget=5000)
    mix = project.lake().read("training_mix")
    assert set(mix["teacher"]) == {"weak", "strong"}
    assert mix.filter(pl.col("category") == "math").height <= 10 and mix["tokens"].sum() <= 5000
    assert not (tmp_path / "exports" / "chat_stage2.jsonl").exists()


def test_exports_round_trip_through_the_cli_and_re_ingest(project, instance, tmp_path):
    """`am-distill export` re-writes the mix from the lake in the AM 1.4M and AM 40M layouts; datasets
    opens both, and both re-ingest (layout am_1.4m / am_40m) to the same query ids and answers."""
    import subprocess
    import sys

    from am_assets.ingest.logic import ingest_source
    from resources.config import CleaningConfig, FileSource
    from tests.conftest import PROJECT_DIR

    build_everything(project, instance, tmp_path)
    mix = project.lake().read("training_mix")
    out = tmp_path / "again"
    proc = subprocess.run([sys.executable, "-m", "am_distill.cli", "-c", str(project.config_path), "export",
                           "--out", str(out)], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stage1 = mix.filter(pl.col("stage") == "stage1")
    want = dict(zip(stage1["query_id"], stage1["reference_answer"]))
    for layout, name in (("am_1.4m", "am_1.4m_stage1.jsonl"), ("am_40m", "am_40m_stage1.jsonl")):
        ds = load_dataset("json", data_files=str(out / name), split="train")
        assert ds.num_rows == stage1.height
        rows, rejected = ingest_source(FileSource(name="back", kind="file", path=out / name, layout=layout),
                                       CleaningConfig())
        assert rejected.height == 0 and rows.height == stage1.height
        assert dict(zip(rows["query_id"], rows["reference_answer"])) == want
        assert set(rows.filter(pl.col("test_cases").is_not_null())["query_id"]) == set(
            stage1.filter(pl.col("test_cases").is_not_null())["query_id"])
    am40 = load_dataset("json", data_files=str(out / "am_40m_stage1.jsonl"), split="train")[0]
    assert am40["answer"].startswith("<think>") and am40["answer_source"] == "strong" and 0 < am40["pass_rate"] <= 1
    assert am40["model_name"] and am40["verify_score"] > 0.99
