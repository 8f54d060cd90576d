"""Pure dedup logic without Dagster: shard hashing, union-find, clustering, representatives, n-grams, kNN."""

import json
import random

import numpy as np
import polars as pl
import pytest

from am_assets.dedup.bench_sources import livecodebench_row, load_benchmark
from am_assets.dedup.decontam import find_contamination, ngrams
from am_assets.dedup.knn import similar_pairs
from am_assets.dedup.logic import UnionFind, choose_representatives, cluster_texts, stable_shard
from am_assets.core.schema import query_id
from resources.config import BenchmarkConfig
from tests.conftest import shared


def test_stable_shard_is_deterministic_and_spread():
    ids = [query_id(f"question number {i}") for i in range(2000)]
    shards = [stable_shard(q, 8) for q in ids]
    assert shards == [stable_shard(q, 8) for q in ids]
    assert stable_shard("q0123", 8) == "s05"  # pinned: a change would reshuffle every lake
    counts = {s: shards.count(s) for s in set(shards)}
    assert sorted(counts) == [f"s{i:02d}" for i in range(8)]
    assert min(counts.values()) > 180  # ~250 each


def test_union_find_never_merges_two_anchored_components():
    uf = UnionFind(4, ["cA", None, "cB", None])
    assert uf.union(1, 0)
    assert not uf.union(1, 2)  # would merge cA and cB
    assert uf.union(3, 2)
    assert uf.anchor[uf.find(1)] == "cA" and uf.anchor[uf.find(3)] == "cB"


def _edges(pairs):
    a, b, s = zip(*pairs) if pairs else ((), (), ())
    return np.array(a, np.int64), np.array(b, np.int64), np.array(s, np.float32)


def test_cluster_texts_first_run_and_new_texts_attach_to_strongest_cluster():
    texts = pl.DataFrame({"query_id": ["q1", "q2", "q3", "q4"], "cluster_id": [None] * 4}, schema_overrides={"cluster_id": pl.String})
    out = cluster_texts(texts, _edges([(0, 1, 0.95)]))
    assert out["cluster_id"].to_list() == ["c1", "c1", "c3", "c4"]
    # later: q5 is new and links to both existing clusters; it joins the stronger one, which stay apart
    prev = out.select("query_id", "cluster_id")
    texts2 = pl.concat([prev, pl.DataFrame({"query_id": ["q5", "q6"], "cluster_id": [None, None]},
                                           schema_overrides={"cluster_id": pl.String})])
    out2 = cluster_texts(texts2, _edges([(4, 0, 0.91), (4, 2, 0.97), (5, 4, 0.99)]))
    assert out2["cluster_id"].to_list() == ["c1", "c1", "c3", "c4", "c3", "c3"]
    assert out2["new_cluster"].to_list() == [False] * 6


def test_new_cluster_name_does_not_collide_with_live_cluster():
    texts = pl.DataFrame({"query_id": ["q1", "q2"], "cluster_id": [None, "c1"]})
    out = cluster_texts(texts, _edges([]))
    assert out["cluster_id"].to_list() == ["c1_", "c1"]


def _rows(**cols):
    n = len(cols["source"])
    base = {"query_id": [f"q{i}" for i in range(n)], "source_row": [str(i) for i in range(n)],
            "cluster_id": ["c"] * n, "reference_answer": [None] * n, "test_cases": [None] * n, "prev_rep": [None] * n}
    base.update(cols)
    return pl.DataFrame(base, schema_overrides={"reference_answer": pl.String, "test_cases": pl.String, "prev_rep": pl.Boolean})


def test_representative_priority_gold_then_source_priority_then_name():
    rows = _rows(source=["b", "a", "c"])
    rep = choose_representatives(rows, {"c": 5})
    assert rep.filter("representative")["source"].to_list() == ["c"]
    rows = _rows(source=["b", "a", "c"], reference_answer=[None, "42", None])
    assert choose_representatives(rows, {"c": 5}).filter("representative")["source"].to_list() == ["a"]
    rep = choose_representatives(_rows(source=["b", "a", "c"]), {})
    assert rep.filter("representative")["source"].to_list() == ["a"]
    assert set(rep.filter(~pl.col("representative"))["duplicate_of"]) == {"q1"}


def test_previous_representative_is_kept_even_if_a_better_row_arrives():
    rows = _rows(source=["old", "new"], reference_answer=[None, "7"], prev_rep=[True, None])
    rep = choose_representatives(rows, {"new": 100})
    assert rep.filter("representative")["source"].to_list() == ["old"]


def test_ngrams_and_short_texts():
    assert len(ngrams("one two three four five", 3)) == 3
    assert len(ngrams("one two", 3)) == 1  # shorter than n: the whole text is one gram
    assert ngrams("One,  TWO three", 3) == ngrams("one two three", 3)


def _bench(items):
    return pl.DataFrame({"benchmark": [b for b, _, _ in items], "item_id": [i for _, i, _ in items],
                         "question": [q for _, _, q in items], "query_id": [query_id(q) for _, _, q in items]})


def test_find_contamination_exact_and_ngram_evidence():
    long_q = ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for "
              "her friends every day with four. How much does she make every day at the farmers' market?")
    bench = _bench([("gsm8k", "1", long_q), ("aime", "7", "Find the number of ordered pairs of integers.")])
    texts = pl.DataFrame({"question": [long_q.upper(), "Preface. " + long_q, "What is two plus two?"]})
    texts = texts.with_columns(query_id=pl.Series([query_id(q) for q in texts["question"]]))
    out = find_contamination(texts, None, bench, None, ngram=13, ngram_min_share=0.0, cosine_threshold=0.9)
    ev = [json.loads(e) if e else None for e in out["contaminated_by"]]
    assert ev[0] == [{"benchmark": "gsm8k", "item_id": "1", "method": "exact", "score": 1.0}]
    assert ev[1][0]["method"] == "ngram" and ev[1][0]["item_id"] == "1" and ev[1][0]["score"] > 0.9
    assert ev[2] is None
    strict = find_contamination(texts, None, bench, None, ngram=13, ngram_min_share=1.0, cosine_threshold=0.9)
    assert strict["contaminated_by"][1] is None  # one n-gram (of the preface) is not in the item


def _unit(rng, n, d=32):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("exact_max,kind", [(10_000, "ivf"), (100, "ivf"), (100, "hnsw")])
def test_similar_pairs_finds_planted_near_duplicates(exact_max, kind):
    rng = np.random.default_rng(0)
    base = _unit(rng, 3000)
    dups = base[:50] + 0.05 * _unit(rng, 50)
    vecs = np.vstack([base, dups / np.linalg.norm(dups, axis=1, keepdims=True)]).astype(np.float32)
    a, b, s = similar_pairs(vecs, np.arange(len(vecs)), 0.9, 5, exact_max, kind, nprobe=16)
    assert {(int(x), int(y)) for x, y in zip(a, b)} == {(i, 3000 + i) for i in range(50)}
    assert (s >= 0.9).all()


def test_gpqa_options_shuffled_with_a_seed(tmp_path):
    import csv

    path = tmp_path / "gpqa.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Record ID", "Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                    "Incorrect Answer 3"])
        for i in range(20):
            w.writerow([f"r{i}", f"Which particle is a lepton? (variant {i})", "electron", "proton", "neutron", "pion"])

    def rows(seed):
        return load_benchmark(BenchmarkConfig(name="gpqa", path=path, layout="gpqa_csv", seed=seed))[0]

    a, b, c = rows(0), rows(0), rows(1)
    assert a.equals(b) and a.height == 20 and not a["question"].equals(c["question"])
    assert a["reference_answer"].n_unique() > 1  # the answer is not always A
    first = a.row(0, named=True)
    line = next(l for l in first["question"].splitlines() if l.endswith("electron"))
    assert line.startswith(f"({first['reference_answer']})") and first["item_id"] == "r0"
    assert first["category"] == "science"
    assert json.loads(first["metadata"])["choices"]["answer"] == first["reference_answer"]


def test_livecodebench_functional_and_stdin_tests():
    rec = {"question_id": "abc1", "question_content": "Add two numbers.", "starter_code": "class Solution:\n    def add(self, a, b):\n",
           "public_test_cases": json.dumps([{"input": "1\n2", "output": "3", "testtype": "functional"}]),
           "private_test_cases": "gASV", "metadata": json.dumps({"func_name": "add"})}
    row = livecodebench_row(rec)
    assert json.loads(row["test_cases"]) == {"type": "functional", "fn_name": "add", "cases": [{"input": [1, 2], "output": 3}]}
    assert json.loads(row["metadata"])["private_tests_skipped"] is True
    rec2 = {"question_id": "x", "question_content": "Read n.", "public_test_cases": [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]}
    assert json.loads(livecodebench_row(rec2)["test_cases"])["type"] == "stdio"


def test_mbpp_benchmark_is_the_test_split():
    df, errors = load_benchmark(BenchmarkConfig(name="mbpp", path=shared("code/mbpp.jsonl"), layout="mbpp"))
    assert not errors and df.height == 500
    ids = df["item_id"].cast(pl.Int64)
    assert ids.min() == 11 and ids.max() == 510
    assert json.loads(df["test_cases"][0])["type"] == "asserts" and (df["benchmark"] == "mbpp").all()


def _reference_clusters(texts: pl.DataFrame, edges) -> list[str]:
    """cluster_texts before it visited only new texts and edge ends (@03fe8e8): a union-find over every
    node, old texts of one cluster pre-merged, new components named by their smallest query_id."""
    prev, qids = texts["cluster_id"].to_list(), texts["query_id"].to_list()
    uf = UnionFind(len(prev), prev)
    first_of: dict[str, int] = {}
    for i, c in enumerate(prev):
        if c is not None:
            uf.parent[i] = first_of.setdefault(c, i)
    a, b, sim = edges
    for k in np.lexsort((b, a, -sim)):
        uf.union(int(a[k]), int(b[k]))
    roots = uf.roots().tolist()
    smallest: dict[int, str] = {}
    for i, r in enumerate(roots):
        smallest[r] = min(smallest.get(r, qids[i]), qids[i])
    taken, names = {c for c in prev if c is not None}, {}
    for r in sorted(set(roots), key=lambda r: smallest[r]):
        if uf.anchor[r] is None:
            name = "c" + smallest[r].lstrip("q")
            while name in taken:
                name += "_"
            taken.add(name)
            names[r] = name
    return [uf.anchor[r] or names[r] for r in roots]


def test_cluster_texts_equals_a_union_find_over_every_node():
    rng = random.Random(0)
    for _ in range(1500):
        ids = sorted({"q" * rng.randint(1, 2) + str(rng.randint(0, 40)) for _ in range(rng.randint(1, 30))})
        prev = [None if rng.random() < 0.4 else rng.choice(["c1", "c2", "c1_", "c" + q.lstrip("q")]) for q in ids]
        texts = pl.DataFrame({"query_id": ids, "cluster_id": prev}, schema={"query_id": pl.String, "cluster_id": pl.String})
        new = [i for i, c in enumerate(prev) if c is None]
        m = rng.randint(0, 20) if new else 0
        edges = (np.array([rng.choice(new) for _ in range(m)], np.int64) if m else np.zeros(0, np.int64),
                 np.array([rng.randrange(len(ids)) for _ in range(m)], np.int64),
                 np.array([rng.choice([0.9, 0.95, 0.99]) for _ in range(m)], np.float32))
        out = cluster_texts(texts, edges)
        assert out["cluster_id"].to_list() == _reference_clusters(texts, edges)
        assert out["new_cluster"].to_list() == [c is None and cid not in prev for c, cid in zip(prev, out["cluster_id"])]
