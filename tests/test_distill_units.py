"""Pure distillation logic: parsing, keys, diffs, prompts, backoff, fingerprints."""

import polars as pl
import pytest

from am_assets.distill.logic import (build_conversation, completion_rows, dedupe, eligible_queries, is_truncated,
                                     parse_response, plan_partition, queries_to_generate, response_id, rows_frame,
                                     summary, wanted_keys)
from resources.config import AM_SYSTEM_PROMPT, OpenAIServerTeacher, SamplingConfig, VllmTeacher
from resources.engines import Completion, backoff_delay, cpu_has_bf16, resolve_dtype


@pytest.mark.parametrize("text, think, answer, fmt, closed", [
    ("<think>a+b</think>\n<answer>42</answer>", "a+b", "42", "tagged", True),
    ("<think>\nlong\n</think>\n\nThe answer is 7.", "long", "The answer is 7.", "r1", True),
    ("so 3 apples</think> 3", "so 3 apples", "3", "r1", True),  # opening tag was in the prompt
    ("<think>still going", "still going", None, "r1", False),
    ("<think>x</think><answer>4", "x", "4", "tagged", False),
    ("<|begin_of_thought|>t<|end_of_thought|>\n<|begin_of_solution|>s<|end_of_solution|>", "t", "s", "skyt1", True),
    ("<|begin_of_thought|>t<|end_of_thought|><|begin_of_solution|>s", "t", "s", "skyt1", False),
    ("<|begin_of_thought|>cut off", "cut off", None, "skyt1", False),
    ("<answer>5</answer>", None, "5", "tagged", True),
    ("plain text 5", None, "plain text 5", "untagged", True),
    ("", None, None, "untagged", True),
])
def test_parse_response(text, think, answer, fmt, closed):
    p = parse_response(text)
    assert (p.think, p.answer, p.format, p.closed) == (think, answer, fmt, closed)


def test_truncated_by_finish_reason_or_missing_tag():
    assert is_truncated("length", parse_response("<think>a</think><answer>b</answer>"))
    assert is_truncated("stop", parse_response("<think>a"))
    assert not is_truncated("stop", parse_response("<think>a</think>b"))


def test_conversation_and_keys():
    assert build_conversation("", "q?") == [{"role": "user", "content": "q?"}]
    assert build_conversation("sys", "q?")[0] == {"role": "system", "content": "sys"}
    assert response_id("q1", "fp", 0) != response_id("q1", "fp", 1) != response_id("q1", "fp2", 1)
    assert response_id("q1", "fp", 0) == response_id("q1", "fp", 0)


def _queries(ids):
    return pl.DataFrame({"query_id": ids, "question": [f"question {i}" for i in ids], "category": ["math"] * len(ids)})


def _rows(qids, fp, n, status="ok"):
    rows = []
    for q in qids:
        comps = [Completion(text=f"<think>t</think> {q}-{i}", finish_reason="stop", prompt_tokens=3,
                            completion_tokens=5) for i in range(n)]
        rows += completion_rows({"query_id": q, "category": "math"}, comps, list(range(n)), fingerprint=fp,
                                model="m", engine="vllm", sampling_json="{}")
    return rows_frame(rows).with_columns(pl.lit(status).alias("status"))


def test_plan_generates_missing_and_drops_departed():
    existing = pl.concat([_rows(["a", "b"], "fp", 2), _rows(["c"], "old", 2)])
    wanted = wanted_keys(_queries(["a", "d"]), "fp", 2)
    plan = plan_partition(existing, wanted, 3)
    assert sorted(plan.keep["query_id"].to_list()) == ["a", "a"]
    assert plan.missing["query_id"].to_list() == ["d", "d"]
    assert plan.removed == 4  # b left the shard; c had an old fingerprint
    todo = queries_to_generate(plan.missing, _queries(["a", "d"]))
    assert todo["query_id"].to_list() == ["d"] and todo["sample_idxs"].to_list() == [[0, 1]]


def test_wanted_keys_reuse_the_partitions_ids():
    qs = _queries(["a", "b", "c"])
    fresh = wanted_keys(qs, "fp", 2)
    assert fresh["response_id"].to_list() == [response_id(q, "fp", i) for q in "abc" for i in range(2)]
    known = pl.concat([_rows(["a", "b"], "fp", 2), _rows(["c"], "old", 2)])
    assert wanted_keys(qs, "fp", 2, known).equals(fresh)  # ids reused for a, b; c's old fingerprint hashed anew
    # ids that another formula wrote are not trusted: every id is computed again
    forged = known.with_columns(pl.format("x{}", pl.col("response_id")).alias("response_id"))
    assert wanted_keys(qs, "fp", 2, forged).equals(fresh)
    assert wanted_keys(qs.head(0), "fp", 2, known).height == 0


def test_plan_retries_errors_and_dedupes():
    ok, err = _rows(["a"], "fp", 2), _rows(["b"], "fp", 1, status="error")
    existing = pl.concat([ok, ok, err])  # a crash between append and compaction, plus a failed request
    plan = plan_partition(existing, wanted_keys(_queries(["a", "b"]), "fp", 2), 3)
    # the failed row stays until its retry replaces it (a killed retry keeps its attempt count)
    assert plan.keep.height == 3 and plan.keep["response_id"].n_unique() == 3 and plan.retried == 1
    assert sorted(plan.missing["sample_idx"].to_list()) == [0, 1] and set(plan.missing["query_id"]) == {"b"}
    assert sorted(plan.missing["attempts"].to_list()) == [0, 1]
    assert plan.removed == 2


def test_retry_budget_per_row():
    err = _rows(["b"], "fp", 2, status="error").with_columns(pl.Series("attempts", [3, 2]))
    wanted = wanted_keys(_queries(["b"]), "fp", 2)
    plan = plan_partition(err, wanted, 3)  # sample 0 spent its 3 attempts: kept as it is, not retried
    assert plan.missing["sample_idx"].to_list() == [1] and plan.missing["attempts"].to_list() == [2]
    todo = queries_to_generate(plan.missing, _queries(["b"]))
    assert todo["sample_idxs"].to_list() == [[1]] and todo["attempts"].to_list() == [[2]]
    comps = [Completion("", "error", error="e")] * 2
    rows = completion_rows({"query_id": "b", "category": "math"}, comps, [1], fingerprint="fp", model="m",
                           engine="openai_server", sampling_json="{}", attempts=[2])
    assert rows[0]["attempts"] == 3
    again = dedupe(pl.concat([err, rows_frame(rows)]))  # the retry's row replaces the older failure
    assert sorted(again["attempts"].to_list()) == [3, 3]
    assert plan_partition(again, wanted, 3).missing.height == 0
    assert plan_partition(again, wanted, 4).missing.height == 2  # a larger budget retries them again
    assert summary(again, 3)["retryable_errors"] == 0 and summary(again, 4)["retryable_errors"] == 2


def test_dedupe_prefers_ok():
    ok = _rows(["a"], "fp", 1)
    bad = ok.with_columns(pl.lit("error").alias("status"))
    assert dedupe(pl.concat([bad, ok]))["status"].to_list() == ["ok"]


def test_completion_rows_parse_and_errors():
    comps = [Completion("<think>x</think><answer>1</answer>", "stop", 4, 6),
             Completion("", "error", error="HTTP 500 from http://h/v1/chat/completions: boom")]
    rows = completion_rows({"query_id": "q", "category": "math"}, comps, [0, 1, 2], fingerprint="f", model="m",
                           engine="openai_server", sampling_json="{}")
    assert len(rows) == 2  # index 2 was not returned: no row
    assert (rows[0]["think"], rows[0]["answer"], rows[0]["truncated"], rows[0]["status"]) == ("x", "1", False, "ok")
    assert rows[1]["status"] == "error" and "HTTP 500" in rows[1]["error"] and rows[1]["response"] is None


def test_eligible_queries_filter():
    unique = pl.DataFrame({"query_id": ["a", "b", "c"], "question": ["x", "y", "z"], "category": ["math"] * 3,
                           "representative": [True, False, True], "contaminated_by": [None, None, '[{"b": 1}]']})
    assert eligible_queries(unique)["query_id"].to_list() == ["a"]
    assert eligible_queries(pl.DataFrame()).height == 0


def test_fingerprint_ignores_transport_not_sampling():
    a = VllmTeacher(name="a", kind="vllm", sampling=SamplingConfig(temperature=0.3))
    assert a.fingerprint() == VllmTeacher(name="b", kind="vllm", chunk_size=3, enforce_eager=False,
                                          sampling=SamplingConfig(temperature=0.3)).fingerprint()
    assert a.fingerprint() != VllmTeacher(name="a", kind="vllm", sampling=SamplingConfig(temperature=1.0)).fingerprint()
    assert a.fingerprint() != VllmTeacher(name="a", kind="vllm", system_prompt="x",
                                          sampling=SamplingConfig(temperature=0.3)).fingerprint()
    s = OpenAIServerTeacher(name="s", kind="openai_server", base_url="http://a/v1", model="m", api_key_env="K")
    assert s.fingerprint() == OpenAIServerTeacher(name="s", kind="openai_server", base_url="http://b/v1",
                                                  model="m", concurrency=1).fingerprint()
    assert s.system_prompt == AM_SYSTEM_PROMPT


def test_backoff_grows_and_honours_retry_after():
    assert all(0 <= backoff_delay(1) <= 1.0 for _ in range(50))
    assert max(backoff_delay(6) for _ in range(200)) > 1.0
    assert backoff_delay(1, retry_after=3.0) >= 3.0
    assert backoff_delay(20) <= 30.0


def test_progress_line():
    from am_assets.distill.generate import Progress

    lines = []
    p = Progress(lines.append, "t/s00", total=10, every_s=3600)
    p.update(4, 100)
    assert lines == []  # not yet due
    p.update(0, 0, force=True)
    assert lines[0].startswith("t/s00: 4/10 prompts, 100 tokens, ") and lines[0].endswith(" tok/s")


def test_auto_dtype_is_float32_on_a_cpu_without_native_bf16(tmp_path):
    avx2 = tmp_path / "avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f\n")
    sapphire = tmp_path / "spr"
    sapphire.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    graviton = tmp_path / "arm"
    graviton.write_text("Features\t: fp asimd bf16 i8mm\n")
    assert not cpu_has_bf16(str(avx2)) and not cpu_has_bf16(str(tmp_path / "missing"))
    assert cpu_has_bf16(str(sapphire)) and cpu_has_bf16(str(graviton))
    assert resolve_dtype("auto", on_cpu=True, cpu_bf16=False) == "float32"
    assert resolve_dtype("auto", on_cpu=True, cpu_bf16=True) == "bfloat16"
    assert resolve_dtype("auto", on_cpu=False, cpu_bf16=False) == "auto"  # GPUs: vLLM picks the model's dtype
    assert resolve_dtype("bfloat16", on_cpu=True, cpu_bf16=False) == "bfloat16"  # an explicit choice stands


def test_progress_log_paces_lines_and_always_passes_the_last():
    from am_assets.core.progress import ProgressLog

    lines = []
    report = ProgressLog(lines.append, every_s=3600)
    for done in range(1, 501):  # 500 chunks of a long step, well within the hour
        report(f"{done}/500", final=done == 500)
    assert lines == ["1/500", "500/500"]  # the start, then the end; none of the 498 between
    report.last -= 3600  # an interval has passed
    report("again")
    assert lines[-1] == "again"
