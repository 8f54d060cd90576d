"""Test cases in the layouts public code datasets use, normalized to our `test_cases` JSON
(am_assets/core/schema.py TEST_CASE_TYPES; docs/verify.md, "Code test layouts")."""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
import zlib
from typing import Any

from am_assets.ingest.fields import _MISSING, FieldError, get_path


def _json_value(value: Any, field: str) -> Any:
    """Accept a JSON string, base64(zlib(JSON)) or base64(zlib(pickle of JSON text)) as LiveCodeBench
    ships private tests, or an already-parsed value."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            decoded = _packed_json(value, field)
            if decoded is None:
                raise FieldError(field, f"not valid JSON (nor base64+zlib JSON): {e.msg}") from None
            return decoded
    return value


class _PlainUnpickler(pickle.Unpickler):
    """Strings, numbers, lists and dicts only: any class or function in the payload is refused, so an
    untrusted dataset cannot run code through pickle."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a test payload")


def _packed_json(value: str, field: str) -> Any:
    """base64(zlib(JSON)) or base64(zlib(pickle(JSON text))) (LiveCodeBench private tests), or None."""
    try:
        raw = zlib.decompress(base64.b64decode(value, validate=True))
    except (binascii.Error, zlib.error, ValueError):
        return None
    if raw[:1] == b"\x80":  # a pickle protocol header
        try:
            raw = _PlainUnpickler(io.BytesIO(raw)).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
            raise FieldError(field, f"pickled test payload refused: {e}") from None
    try:
        return json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    except json.JSONDecodeError:
        return None


def _fn_name(entry_point: str | None) -> str | None:
    """A function name from `entry_point`: a name, JSON metadata (LiveCodeBench {"func_name": ...}),
    or LeetCode starter code (`class Solution: def twoSum(self, ...)`)."""
    text = (entry_point or "").strip()
    if text.startswith("{"):
        try:
            meta = json.loads(text)
        except json.JSONDecodeError:
            return None
        return next((meta[k] for k in ("func_name", "fn_name", "entry_point") if isinstance(meta.get(k), str)), None)
    if "def " in text:
        from am_assets.verify.api import starter_fn_name

        return starter_fn_name(text)
    return text if text.isidentifier() else None


def _unknown(reason: str) -> str:
    """Kept, and reported by the verifier as a verifier_error with this reason: never guessed as stdin."""
    return json.dumps({"type": "unknown", "reason": reason})


def _case_list(value: list, fn: str | None) -> str:
    """[{"input", "output", "testtype"?}] (LiveCodeBench public/private tests, CodeContests): the
    type is read per item; functional inputs are one JSON value per line (the arguments)."""
    types = {c.get("testtype") for c in value}
    if types == {"stdin"} or (types == {None} and not fn):
        return json.dumps({"type": "stdio", "cases": [{"input": c["input"], "output": c["output"]} for c in value]})
    if len(types) > 1:
        return _unknown(f"mixed test types {sorted(map(str, types))} in one item")
    if types not in ({"functional"}, {None}):
        return _unknown(f"unknown testtype {types.pop()!r}")
    if not fn:
        return _unknown("functional tests without a function name (map entry_point to it or to the starter code)")
    try:
        cases = [{"input": [json.loads(line) for line in str(c["input"]).split("\n") if line.strip()],
                  "output": json.loads(c["output"]) if isinstance(c["output"], str) else c["output"]} for c in value]
    except json.JSONDecodeError as e:
        return _unknown(f"functional test input is not one JSON value per line: {e.msg}")
    return json.dumps({"type": "functional", "fn_name": fn, "cases": cases})


def normalize_tests(value: Any, field: str, entry_point: str | None = None) -> str | None:
    """Test cases in any of the layouts we know, as our JSON (schema.TEST_CASE_TYPES)."""
    if value is _MISSING or value is None or value == "" or value == []:
        return None
    value = _json_value(value, field)
    if isinstance(value, list):
        if value and all(isinstance(t, dict) and "input" in t and "output" in t for t in value):
            return _case_list(value, _fn_name(entry_point))
        if not all(isinstance(t, str) for t in value):
            raise FieldError(field, "a test list must hold strings (assert statements)")
        return json.dumps({"type": "asserts", "setup": "", "asserts": value})
    if not isinstance(value, dict):
        raise FieldError(field, f"expected a list or an object, got {type(value).__name__}")
    if value.get("type") in ("check", "asserts", "stdio", "functional", "test_code", "unknown"):
        return json.dumps(value)
    if "test_code" in value:  # AM 1.4M {test_code, test_entry_point}
        return json.dumps({"type": "test_code", "test": value["test_code"],
                           "entry_point": value.get("test_entry_point") or entry_point})
    if "inputs" in value and "outputs" in value:  # APPS/TACO/AM 40M
        if len(value["inputs"]) != len(value["outputs"]):
            raise FieldError(field, "inputs and outputs differ in length")
        cases = [{"input": i, "output": o} for i, o in zip(value["inputs"], value["outputs"])]
        fn = value.get("fn_name") or _fn_name(value.get("starter_code")) or _fn_name(entry_point)
        if fn:  # APPS/TACO call-based outputs come wrapped in a list
            return json.dumps({"type": "functional", "fn_name": fn, "cases": cases, "output_wrapped": True})
        if all(isinstance(i, str) for i in value["inputs"]):
            return json.dumps({"type": "stdio", "cases": cases})
        return _unknown("the inputs are call arguments but there is no fn_name or starter code")
    if "test" in value or "functional" in value:  # HumanEval {test, entry_point}; {"functional": "def check(..."}
        return json.dumps({"type": "check", "test": value.get("test") or value["functional"],
                           "entry_point": value.get("entry_point") or _fn_name(entry_point) or entry_point})
    raise FieldError(field, f"unknown test layout with keys {sorted(value)[:6]}")


def normalize_tests_fields(record: dict, fields: str | list[str], entry_point: str | None) -> str | None:
    """One test field, or several whose case lists add up (LiveCodeBench public + private tests)."""
    if isinstance(fields, str):
        return normalize_tests(get_path(record, fields), fields, entry_point)
    cases: list = []
    for f in fields:
        value = get_path(record, f)
        if value is _MISSING or value in (None, "", []):
            continue
        value = _json_value(value, f)
        if not isinstance(value, list):
            raise FieldError(f, f"expected a list of test cases to add up, got {type(value).__name__}")
        cases += value
    return normalize_tests(cases, "+".join(fields), entry_point)
