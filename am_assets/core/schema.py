"""Shared row schemas and the text normalization every stage hashes with."""

from __future__ import annotations

import hashlib
import re
import unicodedata

import polars as pl

# One normalized query row. JSON-valued columns are strings so every source fits one Delta schema.
QUERY_SCHEMA: dict[str, pl.DataType] = {
    "query_id": pl.String,  # hash of the normalized question text
    "source": pl.String,
    "source_file": pl.String,
    "source_row": pl.String,  # line number (1-based) or the row's own id, for lineage
    "category": pl.String,  # math | code | science | if | other
    "question": pl.String,
    "reference_answer": pl.String,
    "test_cases": pl.String,  # JSON, see TEST_CASE_TYPES
    "instruction_constraints": pl.String,  # JSON list of IFEval-style {"id": ..., "kwargs": {...}}
    "metadata": pl.String,  # JSON
}

# `test_cases` JSON is one object with a "type":
#   {"type": "check", "test": <code defining check(candidate)>, "entry_point": <fn>}   HumanEval
#   {"type": "asserts", "setup": <code>, "asserts": [<assert stmt>, ...]}             MBPP
#   {"type": "stdio", "cases": [{"input": <str>, "output": <str>}, ...]}             stdin/stdout
#   {"type": "functional", "fn_name": <fn>, "cases": [{"input": [args], "output": <value>}]}
#   {"type": "test_code", "test": <code run after the solution>, "entry_point": <fn>}  AM 1.4M
#   {"type": "unknown", "reason": <why>}   ingest could not tell stdin from functional: verifier_error
# functional may add "output_wrapped": true (APPS/TACO: each output is [value]); check may add
# "prompt": the dataset's own code (HumanEval helpers such as `poly`), trusted over the solution's.
TEST_CASE_TYPES = ("check", "asserts", "stdio", "functional", "test_code", "unknown")

REJECTED_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String,
    "source_file": pl.String,
    "source_row": pl.String,
    "field": pl.String,
    "error": pl.String,
    "excerpt": pl.String,  # the first 200 characters of the raw row, for the eye
}

_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFKC, casefold, collapsed whitespace: what 'the same question' means for hashing."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_hash(text: str) -> str:
    return hashlib.blake2b(normalize_text(text).encode(), digest_size=12).hexdigest()


def query_id(question: str) -> str:
    return "q" + text_hash(question)


def empty_frame(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)
