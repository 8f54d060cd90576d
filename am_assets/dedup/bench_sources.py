"""Benchmark items as normalized query rows: QUERY_SCHEMA + `item_id` (the benchmark's own id) + `benchmark`.

Packaged sets (HumanEval, held-out reasoning-gym seeds) and files. Mapped/AM layouts go through the
ingest readers and adapters unchanged, and GPQA-Diamond (CSV) is a preset field mapping of them (multiple
choice); MBPP and LiveCodeBench (JSONL) have small adapters here. Evaluation reads `reference_answer` /
`test_cases` / `metadata.choices` from the same rows.
"""

from __future__ import annotations

import hashlib
import json
import re

import polars as pl

from am_assets.ingest.api import (FieldError, RowError, humaneval_path, humaneval_rows, ingest_source,
                                  normalize_tests_fields, read_records, reasoning_gym_rows)
from am_assets.core.schema import QUERY_SCHEMA, query_id
from resources.config import BenchmarkConfig, CleaningConfig, FieldMapping, FileSource
from resources.file_digest import hash_file, kept_digest

BENCHMARK_SCHEMA = {**QUERY_SCHEMA, "item_id": pl.String, "benchmark": pl.String}
MBPP_TEST_IDS = (11, 510)  # the standard MBPP test split


def _row(question: str, reference=None, tests=None, metadata=None, category="math", item_id="") -> dict:
    return {"question": question, "reference_answer": reference, "test_cases": tests,
            "instruction_constraints": None, "metadata": json.dumps(metadata or {}, default=str),
            "category": category, "source_row": str(item_id)}


def mbpp_row(record: dict) -> dict:
    """MBPP: `text` is the question; the asserts (plus setup code) are the tests."""
    for f in ("text", "task_id", "test_list"):
        if f not in record:
            raise FieldError(f, "missing")
    if not isinstance(record["test_list"], list) or not record["test_list"]:
        raise FieldError("test_list", "expected a non-empty list of assert statements")
    tests = {"type": "asserts", "setup": record.get("test_setup_code") or "", "asserts": record["test_list"]}
    meta = {"task_id": record["task_id"], "first_test": record["test_list"][0],
            "canonical_solution": record.get("code"), "challenge_test_list": record.get("challenge_test_list") or []}
    return _row(record["text"], None, json.dumps(tests), meta, "code", record["task_id"])


# GPQA's CSV columns; the options are shuffled per item (seeded by the benchmark's `seed`)
GPQA_FIELDS = {"question": "Question", "correct": "Correct Answer", "id": "Record ID",
               "incorrect": ["Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]}


def livecodebench_row(record: dict) -> dict:
    for f in ("question_content", "question_id"):
        if f not in record:
            raise FieldError(f, "missing")
    meta_raw = record.get("metadata") or {}
    meta = json.loads(meta_raw) if isinstance(meta_raw, str) and meta_raw else (meta_raw or {})
    fn = json.dumps(meta) if meta.get("func_name") else record.get("starter_code")
    try:  # per item: stdin or functional (never a guessed stdin test), private tests decoded safely
        tests = normalize_tests_fields(record, ["public_test_cases", "private_test_cases"], fn)
    except FieldError:
        meta["private_tests_skipped"] = True
        tests = normalize_tests_fields(record, ["public_test_cases"], fn)
    question = record["question_content"]
    if record.get("starter_code"):
        question += "\n\n```python\n" + record["starter_code"] + "\n```"
    info = {k: record.get(k) for k in ("question_title", "platform", "contest_id", "contest_date", "difficulty")}
    info["starter_code"] = record.get("starter_code") or ""
    return _row(question, None, tests, {**info, **meta}, "code", record["question_id"])


def benchmark_fingerprint(b: BenchmarkConfig) -> str:
    """Data version of a benchmark: its settings plus the bytes of its file (or the HumanEval file),
    kept across commands while the file is unchanged (resources/file_digest.py)."""
    settings = json.dumps(b.model_dump(mode="json"), sort_keys=True)
    path = b.path if b.kind == "file" else (humaneval_path() if b.kind == "humaneval" else None)
    files = [path] if path is not None and path.is_file() else []

    def digest() -> str:
        h = hashlib.blake2b(digest_size=12)
        h.update(settings.encode())
        for f in files:
            hash_file(h, f)
        return h.hexdigest()

    return kept_digest(f"benchmark\n{settings}\n{path}", files, digest)


def benchmark_versions(cfg) -> dict[str, str]:
    """Data version of every configured benchmark (the `benchmark_files` observable asset and the sensors)."""
    return {b.name: benchmark_fingerprint(b) for b in cfg.benchmarks}


def _in_range(item_id: str, rng: tuple[int, int] | None) -> bool:
    if rng is None:
        return True
    number = re.search(r"(\d+)$", item_id)  # "11", "HumanEval/11"
    return number is not None and rng[0] <= int(number.group(1)) <= rng[1]


def file_source(b: BenchmarkConfig) -> FileSource | None:
    """The ingest source a file benchmark reads through (mapped, AM and GPQA layouts); None for the others."""
    if b.kind != "file" or b.layout not in ("mapped", "am_1.4m", "am_40m", "gpqa_csv"):
        return None
    if b.layout == "gpqa_csv":  # a preset of the mapped layout (multiple choice, README)
        return FileSource(name=b.name, kind="file", path=b.path, format="csv", category=b.category or "science",
                          mapping=FieldMapping(**GPQA_FIELDS, shuffle_seed=b.seed))
    return FileSource(name=b.name, kind="file", path=b.path, layout=b.layout, mapping=b.mapping, category=b.category)


def load_benchmark(b: BenchmarkConfig, cleaning: CleaningConfig | None = None) -> tuple[pl.DataFrame, list[str]]:
    """(rows with BENCHMARK_SCHEMA, errors as 'file row N field: message'). A missing file raises."""
    cleaning = cleaning or CleaningConfig()
    errors: list[str] = []
    rows: list[dict] = []
    if b.kind == "humaneval":
        rows = list(humaneval_rows())  # `limit` applies after `id_range`, below
    elif b.kind == "reasoning_gym":
        rows = list(reasoning_gym_rows(b.datasets, b.count, b.seed, b.category))
    elif (src := file_source(b)) is not None:
        df, rejected = ingest_source(src, cleaning)
        errors = [f"{r['source_file']} row {r['source_row']} {r['field']}: {r['error']}" for r in rejected.iter_rows(named=True)]
        rows = df.drop("query_id", "source", "source_file").to_dicts()
    else:
        adapt = {"mbpp": mbpp_row, "livecodebench": livecodebench_row}[b.layout]
        for lineno, record in read_records(b.path, "auto", cleaning.max_row_bytes):
            if isinstance(record, RowError):
                errors.append(f"{b.path} row {lineno} {record.field}: {record.error}")
                continue
            try:
                rows.append(adapt(record))
            except (FieldError, ValueError, TypeError, AttributeError) as e:
                field = getattr(e, "field", "<row>")
                errors.append(f"{b.path} row {lineno} {field}: {getattr(e, 'message', e)}")
    id_range = b.id_range or (MBPP_TEST_IDS if b.layout == "mbpp" else None)
    out = []
    for i, r in enumerate(rows, start=1):
        item_id = str(r.get("source_row") or i)
        if not _in_range(item_id, id_range):
            continue
        r.update(item_id=item_id, source_row=item_id, query_id=query_id(r["question"]), benchmark=b.name, source=b.name,
                 source_file=str(b.path) if b.path else f"<{b.kind}>")
        if b.category:
            r["category"] = b.category
        out.append(r)
        if b.limit is not None and len(out) >= b.limit:
            break
    df = pl.DataFrame(out, schema=BENCHMARK_SCHEMA, orient="row") if out else pl.DataFrame(schema=BENCHMARK_SCHEMA)
    return df, errors
