"""The verifier registry: the first verifier whose `applies` holds takes the row; a new verifier is a
module plus a registry line (docs/verify.md, "Adding a verifier": this is its worked example)."""

from __future__ import annotations

import json
import re

import polars as pl

from am_assets.verify.base import Verdict, Verifier
from am_assets.verify.logic import choose_verifier, verify_partition
from am_assets.verify.registry import REGISTRY, by_key
from resources.config import CATEGORIES, VerificationConfig


def _pattern(metadata):
    return (json.loads(metadata or "{}") or {}).get("answer_regex")


def verify_regex(rows, ctx):
    out = []
    for r in rows:
        try:
            ok = re.fullmatch(_pattern(r.get("metadata")), r["_answer"].strip()) is not None
        except re.error as e:
            out.append(Verdict(0.0, "verifier_error", {"error": f"answer_regex: {e}"}))
            continue
        out.append(Verdict(1.0 if ok else 0.0, "ok", {"pattern": _pattern(r.get("metadata"))}))
    return out


REGEX = Verifier(key="regex", name="regex", version=lambda ctx: "regex/1", verify=verify_regex,
                 applies=lambda row: row.get("category") == "other" and _pattern(row.get("metadata")) is not None)


def test_every_category_has_a_verifier_and_other_is_the_fallback():
    for category in CATEGORIES:
        assert choose_verifier({"category": category, "metadata": "{}"}) == category
    assert REGISTRY[-1].key == "other" and REGISTRY[-1].applies({})
    assert set(by_key()) == {"choice", "math", "code", "if", "science", "reasoning-gym", "other"}


def test_a_new_verifier_is_one_registry_line():
    registry = (*REGISTRY[:-1], REGEX, REGISTRY[-1])
    meta = {"r1": json.dumps({"answer_regex": r"\d{3}-\d{4}"}), "r2": json.dumps({"answer_regex": r"\d{3}-\d{4}"}),
            "r3": json.dumps({"answer_regex": "("}), "r4": "{}"}
    answers = {"r1": "555-0199", "r2": "call me", "r3": "x", "r4": "a haiku"}
    responses = pl.DataFrame({"response_id": list(answers), "query_id": [f"q{k}" for k in answers],
                              "response": [f"<think>t</think><answer>{a}</answer>" for a in answers.values()],
                              "finish_reason": ["stop"] * 4, "status": ["ok"] * 4})
    queries = pl.DataFrame({"query_id": [f"q{k}" for k in answers], "category": ["other"] * 4,
                            "question": ["Give a phone number."] * 4, "metadata": list(meta.values())})
    out, stats = verify_partition(responses, queries, pl.DataFrame(), VerificationConfig(), sandbox_factory=None,
                                  registry=registry)
    rows = {r["response_id"]: r for r in out.iter_rows(named=True)}
    assert [rows[k]["verifier"] for k in answers] == ["regex", "regex", "regex", "judge-other"]
    assert rows["r1"]["verifier_version"] == "regex/1" and rows["r1"]["verify_score"] == 1.0
    assert rows["r2"]["status"] == "ok" and rows["r2"]["verify_score"] == 0.0
    assert rows["r3"]["status"] == "verifier_error"
    assert rows["r4"]["status"] == "verifier_error"  # no judge here: the fallback says so, never a score
    # a second run reuses the cached verdicts of this verifier's version
    again, stats = verify_partition(responses, queries, out, VerificationConfig(), sandbox_factory=None,
                                    registry=registry)
    assert stats["reused"] == 4 and again["verify_score"].to_list() == out["verify_score"].to_list()
