"""Pure verifier logic: IFEval validators, reasoning-gym scoring, judge reply parsing, quality flags."""

from __future__ import annotations

import json

import pytest

from am_assets.verify import ifeval, judging
from am_assets.verify.base import Verdict, answer_part, last_code_block
from am_assets.verify.logic import choose_verifier
from am_assets.verify.quality import repetitive_flags
from am_assets.verify.rgym import rg_spec, verify_rg


def _if(text, *constraints):
    return ifeval.verify_if(text, json.dumps([{"id": i, "kwargs": k} for i, k in constraints]))


@pytest.mark.parametrize("cid,kwargs,good,bad", [
    ("punctuation:no_comma", {}, "no commas here", "one, two"),
    ("keywords:existence", {"keywords": ["apple", "pear"]}, "An Apple and a pear.", "An apple."),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "at least"}, "cat cat", "cat"),
    ("keywords:forbidden_words", {"forbidden_words": ["bad"]}, "good badge", "a bad day"),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "less than"}, "zoo", "zzz"),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"}, "one two three", "a b c d e f"),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"}, "One. Two!", "Only one."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "first\n***\nsecond", "just one"),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"}, "First.\n\nThen more.", "First.\n\nNow."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[name] at [address]", "[name]"),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\nP.S. bye", "Hi."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n* b", "* a"),
    ("detectable_format:constrained_response", {}, "My answer is yes.", "Yes."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 1}, "an *important* bit", "plain"),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\na\nSection 2\nb", "Section 1 only"),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', "{a: 1}"),
    ("detectable_format:title", {}, "<<My Title>>\ntext", "no title"),
    ("combination:two_responses", {}, "first******second", "first******first"),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi"}, "say hi. Hi!", "Hi!"),
    ("startend:end_checker", {"end_phrase": "Any questions?"}, "Done. Any questions?", "Done."),
    ("startend:quotation", {}, '"quoted"', "not quoted"),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "THE BIG dog", "The big dog"),
    ("change_case:english_lowercase", {}, "this is all lowercase english text about the weather today",
     "This Has Capitals in english text about the weather"),
    ("change_case:english_capital", {}, "THIS IS ALL CAPITAL ENGLISH TEXT ABOUT THE WEATHER TODAY",
     "this is not capital english text"),
    ("language:response_language", {"language": "en"}, "This is clearly an English sentence about cats.",
     "Ceci est clairement une phrase française sur les chats."),
])
def test_ifeval_constraint_types(cid, kwargs, good, bad):
    assert _if(good, (cid, kwargs)).score == 1.0, good
    assert _if(bad, (cid, kwargs)).score == 0.0, bad


def test_ifeval_score_is_the_mean_and_bad_input_is_a_status():
    v = _if("hello, world", ("punctuation:no_comma", {}), ("keywords:existence", {"keywords": ["world"]}))
    assert (v.status, v.score) == ("ok", 0.5)
    assert [c["passed"] for c in v.details["constraints"]] == [False, True]
    assert _if("x", ("made_up:thing", {})).status == "verifier_error"
    assert _if("x", ("keywords:existence", {})).status == "verifier_error"  # missing kwargs
    assert ifeval.verify_if("x", None).status == "no_reference"
    assert len(ifeval.CHECKS) == 25


def test_reasoning_gym_rows_use_the_generators_score_answer():
    import reasoning_gym

    entry = reasoning_gym.create_dataset("knights_knaves", size=1, seed=3)[0]
    meta = json.dumps({"reasoning_gym": {"dataset": "knights_knaves", "entry_metadata": entry["metadata"]}})
    spec = rg_spec(meta)
    right = verify_rg(f"Reasoning...\n\\boxed{{{entry['answer']}}}", entry["answer"], entry["question"], spec)
    wrong = verify_rg("\\boxed{Nobody is a knight.}", entry["answer"], entry["question"], spec)
    assert (right.status, right.score) == ("ok", 1.0)
    assert wrong.status == "ok" and wrong.score < 1.0
    assert choose_verifier({"category": "other", "metadata": meta}) == "reasoning-gym"
    assert choose_verifier({"category": "math", "metadata": meta}) == "math"
    assert choose_verifier({"category": "other", "metadata": "{}"}) == "other"
    assert verify_rg("x", None, "q", spec).status == "no_reference"


def test_judge_replies_parse_or_are_unparseable():
    assert judging.parse_science("Score: 4.5").score == 4.5
    assert judging.parse_science("I think it is good").status == "unparseable"
    assert judging.parse_science("Score: 7").status == "unparseable"
    v = judging.parse_other("Coherence: 4\nCorrectness: 3\nHelpfulness: 2")
    assert (v.status, v.score) == ("ok", 0.75)
    assert judging.parse_other("Coherence: 4\nCorrectness: 3").status == "unparseable"
    assert judging.parse_math("Verdict: YES") is True and judging.parse_math("maybe") is None
    assert "Reference answer" in judging.science_prompt("q", "r", "a")


def test_answer_part_and_code_block_extraction():
    assert answer_part(None, "<think>hmm</think>\n<answer>42</answer>") == "42"
    assert answer_part(None, "<|begin_of_thought|>x<|end_of_thought|><|begin_of_solution|>7<|end_of_solution|>") == "7"
    assert answer_part(None, "<think>unfinished thought") == ""
    # the response text decides (one rule for every table); the answer column only stands in without one
    assert answer_part("stale", "<answer>other</answer>") == "other"
    assert answer_part("given", None) == "given"
    text = "```python\nprint(1)\n```\nthen\n```\nraw\n```\n```cpp\nint x;\n```"
    assert last_code_block(text) == ("print(1)\n", "python")
    assert last_code_block("```cpp\nint x;\n```") == ("int x;\n", "cpp")
    assert last_code_block("no code") == (None, None)


def test_repetitive_flags_count_across_the_partition():
    phrase = "the same seven token phrase repeats here"
    texts = [" ".join([phrase] * 30), "a short clean answer", " ".join([phrase] * 4)]
    flags, frequent = repetitive_flags(texts, n=20, max_count=20)
    assert flags == [True, False, True] and frequent > 0
    assert repetitive_flags(texts, n=20, max_count=10_000)[0] == [False, False, False]


def test_verdict_rejects_unknown_status():
    with pytest.raises(ValueError):
        Verdict(1.0, "great")


def test_perplexity_under_the_default_model_and_its_cache():
    import polars as pl

    from am_assets.verify.logic import verify_partition
    from am_assets.verify.quality import perplexities
    from resources.config import VerificationConfig

    fluent, scrambled = perplexities(["The cat sat on the mat and looked out of the window.",
                                      "window the of out looked and mat the on sat cat The."], "smollm2-135m")
    assert 1 < fluent < scrambled

    vcfg = VerificationConfig(perplexity_model="smollm2-135m", math_workers=1)
    queries = pl.DataFrame([{"query_id": "q", "category": "math", "question": "What is 2+2?", "reference_answer": "4"}])
    responses = pl.DataFrame([{"response_id": "r", "query_id": "q", "response": "<answer>\\boxed{4}</answer>",
                               "think": None, "answer": "\\boxed{4}", "status": "ok", "truncated": False}])
    first, _ = verify_partition(responses, queries, pl.DataFrame(), vcfg, sandbox_factory=None)
    assert first["perplexity"][0] > 1 and first["perplexity_model"][0] == "smollm2-135m"
    assert first["passed"][0] and not first["has_think"][0]
    logs = []
    again, stats = verify_partition(responses, queries, first, vcfg, sandbox_factory=None, log=logs.append)
    assert again["perplexity"][0] == first["perplexity"][0] and stats["reused"] == 1 and logs == []
