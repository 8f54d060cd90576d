"""Test-case layouts of public code datasets, read through config alone (docs/verify.md, "Code test layouts")."""

from __future__ import annotations

import base64
import json
import os
import pickle
import zlib

from am_assets.ingest.logic import ingest_source
from resources.config import CleaningConfig, FileSource


def _ingest(tmp_path, records, mapping):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    src = FileSource(name="code", kind="file", path=path, category="code", mapping=mapping)
    rows, rejected = ingest_source(src, CleaningConfig())
    return [json.loads(t) if t else None for t in rows["test_cases"]], rejected


def _lcb_private(cases) -> str:
    """How LiveCodeBench ships private tests: base64(zlib(pickle(JSON text)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/am_distill_pwned",))


def test_contest_rows_public_and_private_tests_add_up_per_item(tmp_path):
    stdin = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]
    functional = [{"input": "[1, 2]\n3", "output": "[0, 1]", "testtype": "functional"}]
    records = [
        {"q": "Add two numbers.", "pub": json.dumps(stdin), "priv": _lcb_private(stdin * 2), "meta": "{}"},
        {"q": "Two sum.", "pub": json.dumps(functional), "priv": _lcb_private(functional),
         "meta": json.dumps({"func_name": "twoSum"})},
        {"q": "Two sum without a name.", "pub": json.dumps(functional), "priv": "", "meta": "{}"},
    ]
    tests, rejected = _ingest(tmp_path, records, {"question": "q", "test_cases": ["pub", "priv"], "entry_point": "meta"})
    assert rejected.height == 0
    assert tests[0]["type"] == "stdio" and len(tests[0]["cases"]) == 3
    assert tests[1] == {"type": "functional", "fn_name": "twoSum",
                        "cases": [{"input": [[1, 2], 3], "output": [0, 1]}] * 2}
    assert tests[2]["type"] == "unknown" and "function name" in tests[2]["reason"]  # never a guessed stdin test


def test_a_pickled_payload_with_code_is_refused_and_never_run(tmp_path):
    evil = base64.b64encode(zlib.compress(pickle.dumps(_Evil()))).decode()
    tests, rejected = _ingest(tmp_path, [{"q": "Anything.", "t": evil}, {"q": "Fine.", "t": "[\"assert True\"]"}],
                              {"question": "q", "test_cases": "t"})
    assert not os.path.exists("/tmp/am_distill_pwned")
    assert rejected.height == 1 and "pickled test payload refused" in rejected["error"][0]
    assert tests == [{"type": "asserts", "setup": "", "asserts": ["assert True"]}]


def test_functional_check_dict_apps_input_output_and_codeforces_examples(tmp_path):
    records = [
        {"q": "Increment.", "t": {"functional": "def check(candidate):\n    assert candidate(1) == 2\n"}, "e": "inc"},
        {"q": "APPS stdin.", "t": json.dumps({"inputs": ["1\n", "2\n"], "outputs": ["2\n", "3\n"]})},
        {"q": "APPS call.", "t": json.dumps({"inputs": [[1], [2]], "outputs": [[2], [3]], "fn_name": "inc"})},
        {"q": "Codeforces.", "t": [{"input": "3\n1 2 3\n", "output": "6\n"}]},
    ]
    tests, rejected = _ingest(tmp_path, records, {"question": "q", "test_cases": "t", "entry_point": "e"})
    assert rejected.height == 0
    assert tests[0] == {"type": "check", "test": records[0]["t"]["functional"], "entry_point": "inc"}
    assert tests[1] == {"type": "stdio", "cases": [{"input": "1\n", "output": "2\n"}, {"input": "2\n", "output": "3\n"}]}
    assert tests[2]["type"] == "functional" and tests[2]["fn_name"] == "inc" and len(tests[2]["cases"]) == 2
    assert tests[3] == {"type": "stdio", "cases": [{"input": "3\n1 2 3\n", "output": "6\n"}]}
