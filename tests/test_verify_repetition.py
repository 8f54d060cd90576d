"""The repetitive flag kept from stored n-gram counts (am_assets/verify/repetition.py) equals a full
count after every run: rows added (keys crossing max_count included), changed, removed, a changed
rule, counts that missed a write, a batch written twice, and compaction. Real MATH solutions, whose
Asymptote figures share boilerplate, give frequent n-grams; counts live in a real Delta table."""

from __future__ import annotations

import hashlib
import random
import re

import polars as pl
import pytest

from am_assets.verify import repetition
from am_assets.verify.quality import count_and_flag, gram_probes, holding, repetitive_flags
from am_assets.verify.repetition import STATE_TABLE, read_state, repetition_flags, write_state
from resources.lake import LakeResource
from tests.test_verify_quality import DATA, _math_solutions

PART = {"teacher": "t1", "shard": "s00"}
N, MAX_COUNT = 20, 6


@pytest.fixture(scope="module")
def solutions() -> list[str]:
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (see ../shared/data/SOURCES.md)")
    texts = _math_solutions()
    # asy and plain solutions interleaved, so each added batch brings boilerplate that crosses max_count
    return [t for pair in zip(texts[:400], texts[501:901]) for t in pair]


def _rows(texts: dict[str, str]) -> pl.DataFrame:
    ids = sorted(texts)
    return pl.DataFrame({"response_id": ids, "response": [texts[i] for i in ids],
                         "content_key": [hashlib.blake2b(texts[i].encode(), digest_size=8).hexdigest() for i in ids]})


class Partition:
    """One partition's runs: flags from the stored counts, checked against a full count each time."""

    def __init__(self, lake: LakeResource, max_count: int = MAX_COUNT):
        self.lake, self.max_count, self.cached = lake, max_count, pl.DataFrame()

    def run(self, texts: dict[str, str], *, store: bool = True) -> dict:
        joined = _rows(texts)
        state = read_state(self.lake, PART)
        flags, update, stats = repetition_flags(joined, self.cached, N, self.max_count, state)
        expected, _ = repetitive_flags(joined["response"].to_list(), N, self.max_count)
        assert flags.tolist() == expected
        if store:
            write_state(self.lake, PART, update, state)
        self.cached = joined.select("response_id", "content_key").with_columns(repetitive=pl.Series(flags))
        return stats


def test_flags_equal_a_full_count_run_after_run(tmp_path, solutions, monkeypatch):
    monkeypatch.setattr(repetition, "COMPACT_BATCHES", 3)
    part = Partition(LakeResource(root=str(tmp_path / "lake")))
    texts = {f"r{i:04d}": t for i, t in enumerate(solutions[:200])}
    assert part.run(texts)["ngram_count"] == "full"
    crossed = 0
    for start in range(200, 500, 100):  # three runs that each add 100 rows; the third compacts
        texts |= {f"r{i:04d}": solutions[i] for i in range(start, start + 100)}
        stats = part.run(texts)
        assert stats["ngram_count"] == "100 new rows"
        crossed += stats["crossed_ngrams"]
    assert crossed > 0, "no key crossed max_count: the stored rows' re-check was not exercised"
    assert read_state(part.lake, PART).batches == 1  # merged back into batch 0
    assert part.run(texts)["ngram_count"] == "0 new rows"  # nothing new: nothing written either
    assert read_state(part.lake, PART).batches == 1

    texts["r0001"] = texts["r0001"] + " changed"
    assert part.run(texts)["ngram_count"] == "full"  # a stored row changed
    del texts["r0002"]
    assert part.run(texts)["ngram_count"] == "full"  # a stored row left
    texts["r9999"] = solutions[700]
    assert part.run(texts)["ngram_count"] == "1 new rows"


def _started(tmp_path, solutions) -> tuple[LakeResource, Partition, dict[str, str]]:
    """A partition of 100 solutions, counted once."""
    lake = LakeResource(root=str(tmp_path / "lake"))
    part, texts = Partition(lake), {f"r{i:04d}": t for i, t in enumerate(solutions[:100])}
    part.run(texts)
    return lake, part, texts


def test_counts_that_do_not_match_the_stored_rows_are_not_used(tmp_path, solutions):
    lake, part, texts = _started(tmp_path, solutions)
    texts |= {f"r{i:04d}": solutions[i] for i in range(100, 150)}
    part.run(texts, store=False)  # the outcomes were written, the counts were not (a crash between)
    texts |= {f"r{i:04d}": solutions[i] for i in range(150, 200)}
    assert part.run(texts)["ngram_count"] == "full"

    other = Partition(lake, max_count=MAX_COUNT + 1)  # another rule: its flags are not the stored ones
    other.cached = part.cached
    assert other.run(texts)["ngram_count"] == "full"


def test_a_batch_written_twice_is_not_trusted(tmp_path, solutions):
    lake, part, texts = _started(tmp_path, solutions)
    state = read_state(lake, PART)
    joined = _rows(texts | {"r9999": solutions[300]})
    _, update, _ = repetition_flags(joined, part.cached, N, MAX_COUNT, state)
    for _ in range(2):  # two runs of the same partition at once, both appending batch 1
        write_state(lake, PART, update, state)
    assert len(lake.read(STATE_TABLE, PART)["batch"].unique()) == 2
    assert read_state(lake, PART) is None


def test_the_whitespace_free_prefilter_misses_no_holder(solutions):
    """`holding` with probes tokenizes only texts containing an n-gram's characters; texts whose spacing
    differs (spaces around symbols dropped, runs of whitespace and \\x1c-\\x1f separators) still match."""
    rng = random.Random(7)
    texts = solutions[:300]
    variants = [re.sub(r" (?=[^\w\s])|(?<=[^\w\s]) ", "", t) if i % 3 == 0 else
                re.sub(r" ", lambda _: rng.choice([" ", "\n\t ", "\x1f", "  "]), t) for i, t in enumerate(texts)]
    series = pl.Series(texts + variants)
    _, counts = count_and_flag(series, N, MAX_COUNT)
    keys = counts.filter(pl.col("count").is_between(2, 40)).sample(200, seed=1).select("key")
    want = holding(series, N, keys)
    got = holding(series, N, keys, probes=gram_probes(pl.Series(texts), N, keys))
    assert want.sum() > 20 and got.tolist() == want.tolist()
