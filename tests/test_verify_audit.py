"""Verifier health (metadata + asset check) and verifier_audit (second-method re-check of a sample):
pure logic on MATH-500 references with planted wrong verdicts, and both through Dagster on a small lake."""

from __future__ import annotations

import json
import re

import dagster as dg
import polars as pl
import pytest

from am_assets.verify import audit
from am_assets.verify.health import health_verdict, verifier_health
from tests.conftest import materialize, shared
from tests.test_verify_dagster import _query, _response

KEY = dg.MultiPartitionKey({"teacher": "t1", "shard": "s00"})
PART = {"teacher": "t1", "shard": "s00"}
QUERY_EXTRA = {"cluster_id": pl.String, "representative": pl.Boolean, "duplicate_of": pl.String,
               "contaminated_by": pl.String}


def _replace_last_boxed(text: str, new: str) -> str:
    start = text.rfind("\\boxed{")
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[:i] + "{" + new + "}" + text[j + 1:]
    raise ValueError("unbalanced \\boxed")


def _bare(answer: str) -> str:
    return re.sub(r"^[a-z]\s*=", "", answer.replace(" ", ""))


def math500(n: int) -> list[dict]:
    """MATH-500 items whose solution boxes the answer, each with a correct and a wrong response: the
    item's own solution, and the same solution boxing another item's (different) answer."""
    items = [json.loads(line) for line in shared("math/math500_test.jsonl").read_text().splitlines()]
    items = [it for it in items if "\\boxed{" in it["solution"]][:n + 1]
    out = []
    for k, (it, other) in enumerate(zip(items[:n], items[1:])):
        same = _bare(other["answer"]) == _bare(it["answer"])  # "x=5" is 5: not a wrong answer
        wrong = "-12345" if same else other["answer"]
        right = it["solution"]
        out.append({"qid": f"m{k}", "question": it["problem"], "reference": it["answer"],
                    "right": f"<think>Let me solve it.</think>\n{right}",
                    "wrong": f"<think>Let me solve it.</think>\n{_replace_last_boxed(right, wrong)}"})
    return out


def planted_rows(items: list[dict], false_pass: int, false_fail: int) -> tuple[pl.DataFrame, set, set]:
    """Sampled-outcome rows for both responses of each item; the first `false_pass` wrong responses are
    marked passed and the first `false_fail` right ones failed (the planted wrong verdicts)."""
    rows, fp, ff = [], set(), set()
    for k, it in enumerate(items):
        for kind in ("right", "wrong"):
            rid = f"{it['qid']}-{kind}"
            passed = kind == "right"
            if kind == "wrong" and len(fp) < false_pass and k % 2 == 0:
                passed, _ = True, fp.add(rid)
            if kind == "right" and len(ff) < false_fail and k % 2 == 1:
                passed, _ = False, ff.add(rid)
            rows.append({"response_id": rid, "query_id": it["qid"], "teacher": "t1", "shard": "s00",
                         "source": "math500", "category": "math", "verifier": "math-verify", "status": "ok",
                         "passed": passed, "verify_score": float(passed), "reference_answer": it["reference"],
                         "response": it[kind], "answer": None, "truncated": False, "finish_reason": "stop"})
    return pl.DataFrame(rows), fp, ff


def test_wilson_interval_known_values():
    assert audit.wilson(0, 0) == (None, None)
    lo, hi = audit.wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = audit.wilson(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)


def test_strict_answer_part_reads_only_a_finished_answer():
    assert audit.strict_answer_part(None, "<think>x = 3</think> so \\boxed{4}") == "so \\boxed{4}"
    assert audit.strict_answer_part(None, "<think>a</think><answer>\\boxed{4}</answer>") == "\\boxed{4}"
    assert audit.strict_answer_part(None, "<think>x = 3, so the answer is 3") == ""  # thinking never ended
    assert audit.strict_answer_part(None, "<think>a</think><answer>\\boxed{4}") == ""  # answer never closed
    assert audit.strict_answer_part(None, "plain chat answer \\boxed{4}") == "plain chat answer \\boxed{4}"
    assert audit.strict_answer_part("\\boxed{7}", None) == "\\boxed{7}"


def test_audit_finds_planted_wrong_verdicts_on_math500():
    items = math500(60)
    rows, fp, ff = planted_rows(items, false_pass=6, false_fail=4)
    checked = audit.second_opinions(rows)
    assert checked["second_method"].unique().to_list() == ["plain-math-verify"]
    disagree = set(checked.filter(pl.col("agree") == False)["response_id"])  # noqa: E712
    assert fp | ff <= disagree  # every planted wrong verdict is caught
    compared = checked.filter(pl.col("agree").is_not_null())
    assert compared.height >= 0.95 * rows.height
    assert len(disagree - fp - ff) <= 0.03 * compared.height  # the second method rarely disagrees otherwise

    [s] = audit.summarize(checked).to_dicts()
    passes, fails = rows["passed"].sum(), rows.height - rows["passed"].sum()
    assert s["sampled"] == 120 and s["false_pass"] >= 6 and s["false_fail"] >= 4
    assert s["false_pass_rate_lo"] <= len(fp) / passes <= s["false_pass_rate_hi"]
    assert s["false_fail_rate_lo"] <= len(ff) / fails <= s["false_fail_rate_hi"]
    md = audit.markdown(audit.summarize(checked))
    assert "| math500 | math | math-verify | plain-math-verify | 120 |" in md and "false pass [95% CI]" in md


def test_truncated_and_unverifiable_rows_are_not_counted_as_agreement():
    items = math500(2)
    rows, _, _ = planted_rows(items, 0, 0)
    def set_(rid, col, value):
        return pl.when(pl.col("response_id") == rid).then(pl.lit(value)).otherwise(col).alias(col)

    rows = rows.with_columns(set_("m0-right", "finish_reason", "length"), set_("m1-right", "verifier", "judge-other"),
                             set_("m1-wrong", "status", "unparseable"))
    by_id = {r["response_id"]: r for r in audit.second_opinions(rows).to_dicts()}
    assert by_id["m0-right"]["second_passed"] is False and by_id["m0-right"]["second_note"] == "truncated"
    assert by_id["m1-right"]["agree"] is None and "no second method" in by_id["m1-right"]["second_note"]
    assert by_id["m1-wrong"]["agree"] is None and "no primary verdict" in by_id["m1-wrong"]["second_note"]


def test_choice_audit_reads_letters_independently():
    """Multiple choice built from MATH-500 answers (the correct one among three others); answers in several
    notations; the second reader catches the planted wrong verdicts."""
    items = math500(12)
    rows, planted = [], set()
    forms = ["The answer is \\boxed{{{L}}}.", "**Answer:** ({L})", "{L}", "So the final answer is {L}.",
             "It is {T}", "\\boxed{{\\text{{{L}}}}}"]
    for k, it in enumerate(items):
        options = [items[(k + j) % len(items)]["reference"] for j in range(4)]  # the correct one is A
        meta = json.dumps({"choices": {"options": options, "answer": "A", "shuffle_seed": None}})
        for pick, right in ((0, True), (1 + k % 3, False)):
            text = forms[k % len(forms)].format(L="ABCD"[pick], T=options[pick])
            rid = f"c{k}-{pick}"
            passed = right if k % 4 else not right  # every 4th item: both verdicts flipped
            if passed != right:
                planted.add(rid)
            rows.append({"response_id": rid, "query_id": f"c{k}", "teacher": "t1", "shard": "s00", "source": "mc",
                         "category": "science", "verifier": "choice", "status": "ok", "passed": passed,
                         "metadata": meta, "response": f"<think>Compare the options.</think>\n{text}",
                         "answer": None, "truncated": False, "finish_reason": "stop", "reference_answer": "A"})
    checked = audit.second_opinions(pl.DataFrame(rows))
    assert checked["second_method"].unique().to_list() == ["last-letter"]
    assert set(checked.filter(pl.col("agree") == False)["response_id"]) == planted  # noqa: E712
    [s] = audit.summarize(checked).to_dicts()
    assert s["compared"] == 24 and s["false_pass"] == s["false_fail"] == 3


def test_sample_is_seeded_and_capped_per_group():
    df = pl.DataFrame({"response_id": [f"r{i}" for i in range(30)], "source": ["a"] * 20 + ["b"] * 10,
                       "category": "math", "verifier": "math-verify"})
    one, two = audit.sample_verdicts(df, 5, seed=1), audit.sample_verdicts(df, 5, seed=1)
    assert one.equals(two) and one.group_by("source").len().sort("source")["len"].to_list() == [5, 5]
    assert not audit.sample_verdicts(df, 5, seed=2).equals(one)
    assert audit.sample_verdicts(df, 50, seed=1).height == 30


def test_health_names_the_verifier_its_share_and_count():
    df = pl.DataFrame({"verifier": ["judge-science"] * 10 + ["math-verify"] * 20 + ["none"] * 5,
                       "status": ["unparseable"] * 4 + ["ok"] * 6 + ["ok"] * 19 + ["timeout"] + ["verifier_error"] * 5})
    health = verifier_health(df)
    assert health["verifier"].to_list() == ["judge-science", "math-verify"]  # "none": not a verifier
    passed, text = health_verdict(health, 0.05)
    assert not passed and "judge-science: 40.0% (4 of 10 rows; unparseable 4)" in text and "math-verify" not in text
    assert health_verdict(health, 0.5)[0]


# ---------------------------------------------------------------------------------------------- Dagster


def _lake(project, queries, responses, audit_sample=50, max_failure_share=None):
    # a generous timeout: the machine is shared, and a slow run must not turn a pass into a fail
    verification = {"sandbox": "local", "math_workers": 1, "code_timeout_s": 30.0, "audit_sample": audit_sample}
    if max_failure_share is not None:
        verification["max_failure_share"] = max_failure_share
    project.write({"shards": 1, "teachers": [{"name": "t1", "kind": "vllm"}], "verification": verification})
    lake = project.lake()
    from am_assets.core.schema import QUERY_SCHEMA

    lake.write_partition("unique_queries", pl.DataFrame(queries, schema={**QUERY_SCHEMA, **QUERY_EXTRA}),
                         {"shard": "s00"})
    df = pl.DataFrame(responses, infer_schema_length=None)
    df = df.with_columns([pl.col(c).cast(pl.String) for c, t in df.schema.items() if t == pl.Null])
    lake.write_partition("teacher_responses", df, PART)
    return lake


def test_verifier_audit_materializes_over_a_small_lake(project, instance):
    from am_assets.ingest.adapters import humaneval_rows
    from am_assets.verify.logic import OUTCOME_SCHEMA

    items = math500(30)
    he = next(humaneval_rows(limit=1))
    meta = json.loads(he["metadata"])
    queries = [{**_query(it["qid"], "math", it["question"], it["reference"]), "source": f"src{k % 2}"}
               for k, it in enumerate(items)] + [_query("qc", "code", he["question"], tests=he["test_cases"])]
    rows, fp, ff = planted_rows(items, false_pass=4, false_fail=2)
    responses = [_response(r["response_id"], r["query_id"], None, response=r["response"]) for r in rows.to_dicts()]
    responses.append(_response("rc", "qc", f"```python\n{meta['prompt']}{meta['canonical_solution']}```"))
    lake = _lake(project, queries, responses, audit_sample=20)
    outcomes = rows.select("response_id", "query_id", "category", "verifier", "status", "passed", "verify_score")
    outcomes = pl.concat([outcomes, pl.DataFrame([{"response_id": "rc", "query_id": "qc", "category": "code",
                                                   "verifier": "code-sandbox", "status": "ok", "passed": True,
                                                   "verify_score": 1.0}])])
    outcomes = outcomes.with_columns([pl.lit(None, dtype=t).alias(c) for c, t in OUTCOME_SCHEMA.items()
                                      if c not in outcomes.columns])
    lake.write_partition("verification_outcomes", outcomes.select(list(OUTCOME_SCHEMA)), PART)

    result = materialize(project.defs(), instance, ["verifier_audit"])
    mat = result.asset_materializations_for_node("verifier_audit")[0]
    table = lake.read("verifier_audit")
    groups = table.group_by("source", "verifier").len().sort("source")
    assert groups.rows() == [("src0", "math-verify", 20), ("src1", "math-verify", 20), ("test", "code-sandbox", 1)]
    disagree = set(table.filter(pl.col("agree") == False)["response_id"])  # noqa: E712
    assert (fp | ff) & set(table["response_id"]) <= disagree
    assert table.filter(pl.col("response_id") == "rc").row(0, named=True)["agree"] is True  # the re-run agrees
    md = mat.metadata["audit"].value
    assert "| src0 | math | math-verify | plain-math-verify | 20 |" in md and "sandbox-rerun" in md
    assert mat.metadata["sampled"].value == 41

    # the same seed samples the same verdicts; the data card shows the latest audit
    materialize(project.defs(), instance, ["verifier_audit"])
    assert set(lake.read("verifier_audit")["response_id"]) == set(table["response_id"])
    card = audit.audit_markdown(lake)
    assert f"Delta version {lake.version('verifier_audit')} of `verifier_audit`" in card
    assert "| src1 | math | math-verify |" in card


def test_health_check_fails_with_error_severity_when_a_verifier_cannot_answer(project, instance):
    from am_assets.ingest.adapters import humaneval_rows

    he = next(humaneval_rows(limit=1))
    no_code = "I would write a loop."  # a verdict (score 0) without running anything: no sandbox timing involved
    queries = [_query("qc", "code", he["question"], tests=he["test_cases"]), _query("qm", "math", "6*7?", "42")]
    responses = [_response("c1", "qc", no_code), _response("c2", "qc", no_code),
                 _response("c3", "qc", "```cpp\nint main() { return 0; }\n```"),
                 _response("c4", "qc", "```cpp\nint main() { return 1; }\n```"),
                 _response("m1", "qm", "\\boxed{42}")]
    _lake(project, queries, responses)
    result = materialize(project.defs(), instance, ["verification_outcomes"], partition_key=KEY)
    health = result.asset_materializations_for_node("verification_outcomes")[0].metadata["verifier_health"].value
    assert health["code-sandbox"]["verifier_error"] == 2 and health["code-sandbox"]["failure_share"] == 0.5
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "verifier_health" and check.partition == "s00|t1"
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "code-sandbox: 50.0% (2 of 4 rows; verifier_error 2)" in check.description
    assert check.metadata["verifiers"].value["code-sandbox"]["failures"] == 2
    assert "math-verify" not in check.description

    project.write({"shards": 1, "teachers": [{"name": "t1", "kind": "vllm"}],
                   "verification": {"sandbox": "local", "math_workers": 1, "max_failure_share": 0.5}})
    # launched with a plain partition string, as a run started by tag only (GraphQL, scripts) is
    [check] = materialize(project.defs(), instance, ["verification_outcomes"], partition_key="s00|t1"
                          ).get_asset_check_evaluations()
    assert check.passed and check.partition == "s00|t1"  # 50% is not above a 50% limit


def test_runner_materializes_the_audit_and_reports_a_failed_health_check(project, instance):
    from am_assets.ingest.adapters import humaneval_rows
    from am_distill.cli.runner import materialize_all

    he = next(humaneval_rows(limit=1))
    queries = [_query("qc", "code", he["question"], tests=he["test_cases"]), _query("qm", "math", "6*7?", "42")]
    responses = [_response("c1", "qc", "```cpp\nint main() { return 0; }\n```"), _response("m1", "qm", "\\boxed{42}")]
    _lake(project, queries, responses)
    lines: list[str] = []
    report = materialize_all(project.defs(), instance, select=["verification_outcomes", "verifier_audit"],
                             log=lines.append)
    assert report.partitions("verifier_audit") == [None] and report.partitions("verification_outcomes") == ["s00|t1"]
    assert [(a, c) for a, _, c, _ in report.failed_checks] == [("verification_outcomes", "verifier_health")]
    assert any("check verifier_health FAILED (ERROR)" in line and "code-sandbox: 100.0%" in line for line in lines)
    assert project.lake().read("verifier_audit").height == 2

    # a changed audit setting makes only the audit stale (audit_settings is an observable source)
    from am_distill.cli.runner import stale_status
    from sensors.registry import record_observations

    _lake(project, queries, responses, audit_sample=7)
    defs = project.defs()
    record_observations(instance, project.cfg())
    status = stale_status(defs.resolve_asset_graph(), instance)
    assert status(dg.AssetKey("verifier_audit"), None) == "STALE"
    assert status(dg.AssetKey("verification_outcomes"), "s00|t1") == "FRESH"


def test_audit_of_real_skyt1_verdicts_finds_no_false_pass(project, instance):
    """Real long-CoT traces (Sky-T1 on MATH-500) through the primary verifier, then the audit: plain
    Math-Verify rejects none of the primary's passes. (It accepts some primary fails: untagged traces whose
    last number is right but that never state or box a final answer; see docs/verify.md.)"""
    import gzip

    path = shared("reasoning_traces/skyt1_27b_math500.jsonl.gz")
    recs = [json.loads(line) for line in gzip.open(path, "rt")][:120]
    queries = [_query(f"q{i}", "math", r["question"], str(r["gt"])) for i, r in enumerate(recs)]
    responses = [{**_response(f"r{i}", f"q{i}", None, response=r["code"][0]), "think": None}
                 for i, r in enumerate(recs)]
    lake = _lake(project, queries, responses, audit_sample=1000)
    materialize(project.defs(), instance, ["verification_outcomes"], partition_key=KEY)
    materialize(project.defs(), instance, ["verifier_audit"])
    [s] = audit.summarize(lake.read("verifier_audit")).to_dicts()
    assert s["sampled"] == 120 and s["compared"] >= 115 and s["primary_passes"] >= 30
    assert s["false_pass"] == 0 and s["false_pass_rate_hi"] < 0.12
