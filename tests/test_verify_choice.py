"""Multiple choice end to end: a GPQA-style CSV (question / correct / three incorrect) ingested through
config alone, as a source and as a benchmark, then responses in many forms verified by the choice
verifier (verify_partition, evaluation scoring, and the Dagster assets)."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import polars as pl
import pytest

from am_assets.verify.choice import read_choice, verify_choice
from tests.conftest import materialize

# real science questions, written for this test: (question, correct, three incorrect)
QUESTIONS = [
    ("What is the SI unit of electric capacitance?", "farad", "henry", "ohm", "tesla"),
    ("Which organelle is the main site of oxidative phosphorylation in eukaryotic cells?", "mitochondrion",
     "ribosome", "Golgi apparatus", "lysosome"),
    ("A 2.0 kg mass is lifted 3.0 m at constant speed near Earth's surface (g = 9.8 m/s^2). How much work is "
     "done against gravity?", "58.8 J", "5.88 J", "6.0 J", "19.6 J"),
    ("What is the hybridization of the carbon atoms in ethyne, C2H2?", "sp", "sp2", "sp3", "sp3d"),
    ("Which quantity is conserved in an elastic collision but not in a perfectly inelastic one?",
     "total kinetic energy", "total momentum", "total mass", "total electric charge"),
    ("Which of these elements is a noble gas?\nChoose one, \"as written\".", "argon", "nitrogen", "chlorine", "sodium"),
]
COLUMNS = ["question", "correct", "wrong1", "wrong2", "wrong3"]
MAPPING = {"question": "question", "correct": "correct", "incorrect": ["wrong1", "wrong2", "wrong3"]}


def _write_csv(path, rows=QUESTIONS, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(COLUMNS)
        w.writerows(rows)
    return path


def well_formed(letter: str, text: str) -> list[str]:
    """Answer parts that state `letter` (whose option is `text`) as the final answer."""
    return [f"\\boxed{{{letter}}}", f"({letter})", f"The answer is {letter}", f"Answer: {letter}", letter,
            f"**{letter}**", f"{letter}.", f"\\boxed{{\\text{{{letter}}}}}", text, f"The answer is {text}.",
            f"**Answer:** ({letter}) {text}", f"The correct answer is **({letter})**.",
            f"A good approach is to recall the definitions.\n\nThe answer is {letter}.",
            f"Option A looks tempting, but the correct option is {letter}.",
            f"The answer is A. Wait, that is wrong: the answer is {letter}.",
            f"Therefore, the answer is option {letter}.", f"Answer:\n{letter}",
            f"Answer: {letter}\n\nExplanation: A and the others contradict energy conservation.",
            f"Let me restate the options and pick one.\n\nFinal answer: $\\boxed{{{letter}}}$"]


def wrong_forms(letter: str, other: str, other_text: str) -> list[str]:
    return [f"\\boxed{{{other}}}", f"The answer is {other}", other_text, f"The answer is {letter} or {other}.",
            f"\\boxed{{{letter}}} or \\boxed{{{other}}}", f"\\boxed{{{letter}, {other}}}",
            f"Answer: either {letter} or {other}",
            "A good approach is to compare the options one by one.", "The answer is", "I am not sure.",
            "Answer: A good approach is to compare the options.",
            f"The answer is ({letter}) {other_text}"]


OPTS = ["4.2 J", "42 J", "420 J", "0.42 J"]


@pytest.mark.parametrize("text", well_formed("B", "42 J"))
def test_letter_forms_read_as_the_letter(text):
    assert read_choice(text, OPTS)[0] == ["B"]


@pytest.mark.parametrize("text", wrong_forms("B", "C", "420 J"))
def test_wrong_several_or_no_letter_never_read_as_b_alone(text):
    assert read_choice(text, OPTS)[0] != ["B"]


def test_article_a_and_restated_option_lists_are_not_answers():
    assert read_choice("A good approach is to use W = mgh.", OPTS) == ([], "none")
    listed = "(A) 4.2 J\n(B) 42 J\n(C) 420 J\n(D) 0.42 J"
    assert read_choice(listed, OPTS)[0] == []
    assert read_choice(listed + "\n\nSo the answer is (B).", OPTS)[0] == ["B"]
    assert read_choice("Let's check option A: W = 2 * 3 = 6 J, too small.", OPTS)[0] == []
    assert read_choice("Answer: A good approach is W = mgh.", OPTS)[0] == []
    assert read_choice("The answer is A because W = mgh is too small here.", OPTS)[0] == ["A"]


def test_verdict_scale_and_statuses():
    meta = json.dumps({"choices": {"options": OPTS, "answer": "B", "shuffle_seed": None}})
    assert verify_choice("\\boxed{B}", meta, "science").score == 5.0  # science's 0-5 scale (threshold 4.99)
    assert verify_choice("\\boxed{B}", meta, "other").score == 1.0
    several = verify_choice("A or B", meta, "science")
    assert several.status == "ok" and several.score == 0 and "several" in several.details["reason"]
    none = verify_choice("no idea", meta, "science")
    assert none.status == "ok" and none.score == 0 and none.details["reason"]
    broken = verify_choice("B", json.dumps({"choices": {"options": OPTS, "answer": "E"}}), "science")
    assert broken.status == "verifier_error"


def _project_config(csv_path):
    return {"shards": 1, "teachers": [{"name": "t1", "kind": "vllm"}],
            "verification": {"sandbox": "local", "math_workers": 1},
            "sources": [{"name": "sci_mc", "kind": "file", "path": str(csv_path), "category": "science",
                         "mapping": MAPPING}],
            "benchmarks": [{"name": "sci_bench", "path": str(csv_path), "category": "science", "mapping": MAPPING},
                           {"name": "sci_other", "path": str(csv_path), "category": "other",
                            "mapping": {**MAPPING, "shuffle_seed": 7}}]}


def _responses(queries: pl.DataFrame) -> tuple[pl.DataFrame, list[bool]]:
    """Every query answered in every well-formed form (expected pass) and every wrong form (expected fail)."""
    rows, expect = [], []
    for q in queries.iter_rows(named=True):
        ch = json.loads(q["metadata"])["choices"]
        letter = ch["answer"]
        other = next(x for x in "ABCD" if x != letter)
        forms = [(a, True) for a in well_formed(letter, ch["options"]["ABCD".index(letter)])]
        forms += [(a, False) for a in wrong_forms(letter, other, ch["options"]["ABCD".index(other)])]
        forms += [(f"<think>The answer is {letter}", False)]  # cut off inside the thinking
        for i, (answer, ok) in enumerate(forms):
            response = answer if answer.startswith("<think>") else f"<think>Let me think.</think>\n{answer}"
            rows.append({"response_id": f"{q['query_id']}-{i}", "query_id": q["query_id"], "response": response,
                         "think": None, "answer": None, "status": "ok", "finish_reason": "stop", "truncated": False})
            expect.append(ok)
    return pl.DataFrame(rows), expect


def test_csv_source_through_config_then_verify_partition(project, tmp_path):
    from am_assets.ingest.logic import ingest_source
    from am_assets.verify.logic import verify_partition

    project.write(_project_config(_write_csv(tmp_path / "sci.csv")))
    cfg = project.cfg()
    queries, rejected = ingest_source(cfg.source("sci_mc"), cfg.cleaning)
    assert rejected.height == 0 and queries.height == len(QUESTIONS)
    for q, src in zip(queries.iter_rows(named=True), QUESTIONS):
        ch = json.loads(q["metadata"])["choices"]
        assert sorted(ch["options"]) == sorted(src[1:]) and ch["options"]["ABCD".index(ch["answer"])] == src[1]
        assert q["reference_answer"] == ch["answer"] and isinstance(ch["shuffle_seed"], int)
        assert q["question"].startswith(src[0]) and f"({ch['answer']}) {src[1]}" in q["question"]
        assert q["category"] == "science"
    assert len(set(queries["reference_answer"])) > 1  # shuffled: the correct option is not always A

    responses, expect = _responses(queries)
    out, _ = verify_partition(responses, queries, pl.DataFrame(), cfg.verification, sandbox_factory=None)
    assert set(out["verifier"]) == {"choice"}
    got = out["passed"].to_list()
    assert sum(got[i] for i, e in enumerate(expect) if e) == sum(expect)  # 100% on well-formed answers
    false_passes = [responses["response"][i] for i, e in enumerate(expect) if not e and got[i]]
    assert false_passes == []
    statuses = dict(out.group_by("status").len().iter_rows())
    assert statuses == {"ok": len(expect) - queries.height, "truncated": queries.height}


def test_mc_benchmark_is_scored_by_the_choice_verifier(project, tmp_path):
    from am_assets.dedup.bench_sources import load_benchmark
    from am_assets.evaluate.logic import conversations, item_table, samples_frame, score_samples

    project.write(_project_config(_write_csv(tmp_path / "sci.csv")))
    cfg = project.cfg()
    bench, errors = load_benchmark(cfg.benchmark("sci_bench"))
    assert errors == [] and bench.height == len(QUESTIONS)
    other, _ = load_benchmark(cfg.benchmark("sci_other"))
    assert set(other["category"]) == {"other"}
    assert other["question"].to_list() != bench["question"].to_list()  # another seed, another order
    assert all(c[-1]["content"].endswith(" LETTER") for c in conversations(bench, None, " BOXED", " LETTER"))

    def completion(text):
        return SimpleNamespace(text=text, finish_reason="stop", prompt_tokens=5, completion_tokens=5, error=None)

    outs = []
    for row in bench.iter_rows(named=True):
        letter = row["reference_answer"]
        wrong = next(x for x in "ABCD" if x != letter)
        outs.append([completion(f"The answer is ({letter})."), completion(f"\\boxed{{{wrong}}}")])
    scored = score_samples(samples_frame(bench, outs, "m", "sci_bench"), bench, cfg.verification, sandbox_factory=None)
    assert set(scored["verifier"]) == {"choice"}
    items = item_table(scored, 2)
    assert items["correct"].to_list() == [1] * len(QUESTIONS) and items["pass_at_1"].to_list() == [0.5] * len(QUESTIONS)


def test_mc_source_and_benchmark_through_dagster(project, instance, tmp_path):
    project.write(_project_config(_write_csv(tmp_path / "sci.tsv", delimiter="\t")))
    defs = project.defs()
    assert materialize(defs, instance, ["raw_queries"], partition_key="sci_mc").success
    assert materialize(defs, instance, ["benchmarks"], partition_key="sci_bench").success
    lake = project.lake()
    raw = lake.scan("raw_queries", {"source": "sci_mc"}).collect()
    bench = lake.scan("benchmarks", {"benchmark": "sci_bench"}).collect()
    assert raw.height == bench.height == len(QUESTIONS)
    assert all(json.loads(m)["choices"]["answer"] == r for m, r in zip(bench["metadata"], bench["reference_answer"]))
