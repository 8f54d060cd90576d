"""An `import` teacher: the Sky-T1 MATH-500 traces become a teacher_responses partition."""

import gzip
import json

import dagster as dg
import polars as pl

from am_assets.core.responses import cut_off, parse_response
from am_assets.core.schema import query_id, text_hash
from tests.conftest import materialize, shared
from tests.distill_helpers import mkey, write_unique_queries

BEGIN_T, END_T = "<|begin_of_thought|>", "<|end_of_thought|>"
BEGIN_S, END_S = "<|begin_of_solution|>", "<|end_of_solution|>"


def test_skyt1_traces_import(project, instance):
    traces = shared("reasoning_traces/skyt1_27b_math500.jsonl.gz")
    problems = [json.loads(line)["problem"] for line in open(shared("math/math500_test.jsonl"))]
    project.write({"shards": 1, "teachers": [
        {"name": "skyt1", "kind": "import", "path": str(traces), "layout": "skyt1", "model": "sky-t1-27b"}]})
    # MATH-500 as the shard's queries, plus one question the file has no trace for
    write_unique_queries(project.lake(), {"s00": problems + ["What is the airspeed of an unladen swallow?"]})
    result = materialize(project.defs(), instance, ["teacher_responses"], partition_key=mkey("skyt1", "s00"))
    mat = result.asset_materializations_for_node("teacher_responses")[0]

    records = [json.loads(line) for line in gzip.open(traces, "rt")]
    by_qid = {query_id(r["question"]): r["code"][0] for r in records}
    df = project.lake().read("teacher_responses")
    assert df.height == 500 and set(df["query_id"]) == set(by_qid)  # matched by normalized text
    assert (df["sample_idx"] == 0).all() and (df["engine"] == "import").all() and (df["model"] == "sky-t1-27b").all()
    assert df["response"].to_list() == [by_qid[q] for q in df["query_id"]]

    complete = df.filter(pl.col("response").str.contains(END_S, literal=True)
                         & pl.col("response").str.contains(BEGIN_T, literal=True)).row(0, named=True)
    text = complete["response"]
    assert complete["think"] == text.split(BEGIN_T)[1].split(END_T)[0].strip()
    assert complete["answer"] == text.split(BEGIN_S)[1].split(END_S)[0].strip()
    assert complete["format"] == "skyt1" and not complete["truncated"]

    # truncated = a section opened and never closed (no finish_reason for imports)
    def cut(t):
        return (BEGIN_T in t and END_T not in t) or (BEGIN_S in t and END_S not in t)
    tag_cut = {q for q, t in by_qid.items() if cut(t)}
    assert len(tag_cut) == 110  # 94 thoughts never closed + 16 solutions never closed
    # untagged traces with no finish reason: cut when they stop mid-sentence (responses.cut_off), e.g.
    # "... we need to find the value of" or an unclosed \[ formula
    text_cut = {q for q, t in by_qid.items() if parse_response(t).format == "untagged" and cut_off(t)}
    assert 20 <= len(text_cut) <= 40, len(text_cut)
    assert any(by_qid[q].rstrip().endswith((" the", " of", " and", ",", "=")) for q in text_cut)
    assert set(df.filter(pl.col("truncated"))["query_id"]) == tag_cut | text_cut
    unclosed_thought = df.filter(pl.col("truncated") & pl.col("answer").is_null())
    assert unclosed_thought.height == 94 and unclosed_thought["think"].null_count() == 0
    # the untagged traces (no Sky-T1 markers) are all answer
    untagged = df.filter(pl.col("format") == "untagged")
    assert untagged.height == 210 and untagged["think"].null_count() == 210
    assert mat.metadata["truncated"].value == len(tag_cut | text_cut) and mat.metadata["errors"].value == 0

    # nothing new to import on a rerun
    again = materialize(project.defs(), instance, ["teacher_responses"], partition_key=mkey("skyt1", "s00"))
    assert again.asset_materializations_for_node("teacher_responses")[0].metadata["generated"].value == 0
    assert isinstance(mat.metadata["teacher_config"], dg.JsonMetadataValue)


def test_import_index_is_cached_across_commands_and_follows_the_file(tmp_path):
    from am_assets.distill.imports import ImportEngine
    from resources.config import ImportTeacher

    problems = [json.loads(line) for line in open(shared("math/math500_test.jsonl"))][:40]
    path = tmp_path / "teacher.jsonl"
    def write(first_solution):
        path.write_text("".join(json.dumps({"question": p["problem"], "response": first_solution if i == 0 else
                                            p["solution"]}) + "\n" for i, p in enumerate(problems)))
    write(problems[0]["solution"])
    cfg = ImportTeacher(name="t", kind="import", path=path)
    root = tmp_path / "cache"
    first = ImportEngine(cfg, root)
    q = problems[0]["problem"]
    assert [r for r, _ in first.lookup([q], 2)[text_hash(q)]] == [problems[0]["solution"]]
    built = first.path.stat().st_mtime_ns
    again = ImportEngine(ImportTeacher(name="other", kind="import", path=path), root)  # the next command
    assert again.path == first.path and again.path.stat().st_ino == first.path.stat().st_ino  # reused, not rebuilt
    assert again.path.stat().st_mtime_ns >= built  # touched: pruning keeps what is used
    write("Edited: \\boxed{42}")  # new file bytes
    edited = ImportEngine(ImportTeacher(name="t", kind="import", path=path), root)
    assert edited.path != first.path
    assert [r for r, _ in edited.lookup([q], 1)[text_hash(q)]] == ["Edited: \\boxed{42}"]
    assert sorted(p.name for p in root.iterdir()) == sorted([first.path.name, edited.path.name])  # no partials
