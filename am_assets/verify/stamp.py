"""What a teacher x shard partition's outcome rows were computed from, so that a run can read only
the responses added since.

Adding a source appends a few new responses to every teacher_responses partition. Re-reading all of
a partition's responses, hashing them and joining them to the verdict cache took ~0.6 s of a
250k-response partition, to learn that every stored row is unchanged. The lake table
`verification_inputs` (partition columns teacher, shard; one row per partition) records, after each
run, the names of the teacher_responses data files it read, the outcome partition's own files after
its write, a signature of every setting a stored row depends on, and a fingerprint of the query rows
the stored responses join to. The next run reads only the new data files when all of these hold:
- the outcome partition's files are the recorded ones (nothing wrote it since, no crash in between);
- every recorded response file is still in the partition (Delta data files are immutable, so their
  rows are unchanged; an overwrite or a delete replaces files);
- the settings signature and the query fingerprint are the same;
- no new response id is a stored one, and the n-gram counts let the stored `repetitive` flags stand
  (repetition.appended_flags).
Otherwise the run reads the whole partition, as before. Either way the outcome rows are the same
(tests/test_verify_new_files.py compares them).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import polars as pl
from deltalake import DeltaTable

from am_assets.verify.logic import OUTCOME_SCHEMA, query_rows, verifier_versions
from am_assets.verify.registry import REGISTRY
from resources.lake import hash_sum

STAMP_TABLE = "verification_inputs"
RESPONSES = "teacher_responses"
OUTCOMES = "verification_outcomes"


@dataclass(frozen=True)
class InputStamp:
    response_files: frozenset[str]
    outcome_files: frozenset[str]
    settings: str
    queries_fp: int
    queries_n: int

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame({"response_files": [json.dumps(sorted(self.response_files))],
                             "outcome_files": [json.dumps(sorted(self.outcome_files))],
                             "settings": [self.settings], "queries_fp": [self.queries_fp],
                             "queries_n": [self.queries_n]})


def settings_signature(vcfg, versions: dict, registry, responses_schema: pl.Schema, query_cols: list[str]) -> str:
    """Every setting a stored outcome row depends on besides its inputs: the verification section
    (thresholds, n-gram rule, perplexity model), each verifier's version, the registry's order, the
    columns the cache key hashes, the outcome columns and the Polars version (whose hash makes the keys)."""
    spec = {"verification": vcfg.model_dump(mode="json"), "versions": versions, "registry": [v.key for v in registry],
            "responses": [(c, str(t)) for c, t in responses_schema.items()], "queries": query_cols,
            "outcomes": list(OUTCOME_SCHEMA), "polars": pl.__version__}
    return hashlib.blake2b(json.dumps(spec, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def queries_fingerprint(queries: pl.DataFrame, query_ids: pl.Series) -> tuple[int, int]:
    """(sum of the 64-bit hashes of the rows of `queries` (logic.query_rows: one per query_id, every
    column a verdict reads) that `query_ids` join to, how many)."""
    if queries.height == 0 or query_ids.len() == 0:
        return 0, 0
    q = queries.join(pl.DataFrame({"query_id": query_ids.unique()}), on="query_id", how="semi")
    if q.height == 0:
        return 0, 0
    return hash_sum(q.select(pl.struct(sorted(q.columns)).hash(seed=2)).to_series()), q.height


@dataclass
class PartitionInputs:
    """One snapshot of a partition's teacher_responses and the shard's query rows, read whole or
    only in the files added since the stamp."""
    part: dict[str, str]
    dt: DeltaTable | None
    files: dict[str, str]
    settings: str
    queries: pl.DataFrame
    stamp: InputStamp | None = None

    @classmethod
    def open(cls, lake, part: dict[str, str], vcfg, judge_version: str, queries: pl.DataFrame) -> PartitionInputs:
        dt = lake.table(RESPONSES)
        schema = pl.scan_delta(dt).collect_schema() if dt is not None else pl.Schema()
        q = query_rows(queries)
        settings = settings_signature(vcfg, verifier_versions(vcfg, judge_version), REGISTRY, schema,
                                      [c for c in q.columns if c in queries.columns])
        return cls(part, dt, lake.partition_files(RESPONSES, part, dt), settings, q)

    def new_rows(self, lake, cached: pl.DataFrame) -> tuple[pl.DataFrame | None, str]:
        """(the responses added since the stamp, or None when the whole partition must be read; why)."""
        if self.dt is None or cached.height == 0:
            return None, "nothing stored yet"
        self.stamp = read_stamp(lake, self.part)
        uris, why = new_files(self.stamp, self.files, lake.partition_files(OUTCOMES, self.part), self.settings)
        if uris is None:
            return None, why
        if queries_fingerprint(self.queries, cached["query_id"]) != (self.stamp.queries_fp, self.stamp.queries_n):
            return None, "query rows of stored responses changed"
        new = lake.read_files(self.dt, uris, self.part)
        return (new, "ok") if new is not None else (None, "the table's protocol needs a Delta reader")

    def stored_texts(self, lake, cached: pl.DataFrame) -> pl.Series:
        """The `response` of each cached row, in its order (one column of the snapshot)."""
        texts = lake.scan(RESPONSES, self.part, dt=self.dt).select("response_id", "response").collect()
        return cached.select("response_id").join(texts.unique("response_id", keep="first"), on="response_id",
                                                 how="left", maintain_order="left")["response"]

    def read_all(self, lake) -> pl.DataFrame:
        return pl.DataFrame() if self.dt is None else lake.scan(RESPONSES, self.part, dt=self.dt).collect()

    def write_stamp(self, lake, outcomes: pl.DataFrame, version: int, context=None) -> None:
        """After the outcomes' write (Delta `version`): what they were computed from."""
        at = lake.table(OUTCOMES, version=version)
        fp, n = queries_fingerprint(self.queries, outcomes["query_id"])
        stamp = InputStamp(frozenset(self.files), frozenset(lake.partition_files(OUTCOMES, self.part, at)),
                           self.settings, fp, n)
        if stamp != self.stamp:
            write_stamp(lake, self.part, stamp, context)


def read_stamp(lake, part: dict[str, str]) -> InputStamp | None:
    rows = lake.read(STAMP_TABLE, part)
    if rows.height != 1:  # none yet, or two runs at once wrote one each: read everything
        return None
    r = rows.row(0, named=True)
    return InputStamp(frozenset(json.loads(r["response_files"])), frozenset(json.loads(r["outcome_files"])),
                      r["settings"], r["queries_fp"], r["queries_n"])


def write_stamp(lake, part: dict[str, str], stamp: InputStamp, context=None) -> None:
    lake.write_partition(STAMP_TABLE, stamp.frame(), part, context=context)


def new_files(stamp: InputStamp | None, response_files: dict[str, str], outcome_files: dict[str, str],
              settings: str) -> tuple[list[str] | None, str]:
    """(URIs of the response files added since the stamp, or None when the whole partition must be
    read; why)."""
    if stamp is None:
        return None, "no stamp of the last run's inputs"
    if stamp.outcome_files != set(outcome_files):
        return None, "the outcome partition changed since the stamp"
    if stamp.settings != settings:
        return None, "the verification settings or schemas changed"
    if not stamp.response_files <= set(response_files):
        return None, "teacher_responses rewrote rows of the partition"
    return [uri for name, uri in sorted(response_files.items()) if name not in stamp.response_files], "ok"
