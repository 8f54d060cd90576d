"""query_embeddings, benchmarks and unique_queries materialized through Dagster on real data."""

import json

import polars as pl

from tests.conftest import materialize, shared

GSM = {"mapping": {"question": "question", "answer": "answer", "answer_format": "gsm8k"}, "category": "math"}

# hand-written rewordings of GSM8K test questions 0, 1, 2, 3 and 5
PARAPHRASES = {
    0: "Janet's ducks lay 16 eggs each day. Every morning she eats three for breakfast and uses four to bake muffins "
       "for her friends daily. She sells the rest at the farmers' market for $2 per fresh duck egg. How many dollars "
       "does she make at the farmers' market each day?",
    1: "It takes 2 bolts of blue fiber and half as much white fiber to make a robe. How many bolts does it take in total?",
    2: "Josh decided to flip a house. He bought a house for $80,000 and spent $50,000 on repairs. This raised the "
       "house's value by 150%. How much profit did he make?",
    3: "James runs 3 sprints 3 times a week. Each sprint is 60 meters. How many meters in total does he run each week?",
    5: "Kylar goes to the store to buy glasses for his new apartment. A glass costs $5, but every second glass costs "
       "just 60% of the price. Kylar wants 16 glasses. How much does he have to pay for them?",
}


def _gsm_lines(start, stop):
    with open(shared("gsm8k/test.jsonl")) as f:
        return f.readlines()[start:stop]


def _write(path, lines):
    path.write_text("".join(lines))
    return str(path)


def _materialize_all(project, instance, sources, benchmarks=(), embed=True):
    defs = project.defs()
    results = {}
    for s in sources:
        results[s] = materialize(defs, instance, ["raw_queries", "clean_queries", *(["query_embeddings"] if embed else [])],
                                 partition_key=s)
    for b in benchmarks:
        materialize(defs, instance, ["benchmarks"], partition_key=b)
    results["dedup_clusters"] = materialize(defs, instance, ["dedup_clusters"])
    shard_results = [materialize(defs, instance, ["unique_queries"], partition_key=k) for k in project.cfg().shard_keys()]
    return results, shard_results


def _meta(result, asset):
    return result.asset_materializations_for_node(asset)[0].metadata


def _unique(project):
    return project.lake().scan("unique_queries").collect()


def test_paraphrases_cluster_and_unrelated_questions_do_not(project, instance, tmp_path):
    gsm = _write(tmp_path / "gsm.jsonl", _gsm_lines(0, 60))
    para = _write(tmp_path / "para.jsonl", [json.dumps({"question": q}) + "\n" for q in PARAPHRASES.values()])
    project.write({"shards": 4, "sources": [{"name": "gsm", "kind": "file", "path": gsm, **GSM},
                                            {"name": "para", "kind": "file", "path": para, "category": "math"}],
                   "benchmarks": [{"name": "gsm_para", "path": para, "category": "math"}]})
    _materialize_all(project, instance, ["gsm", "para"], ["gsm_para"])
    uq = _unique(project)
    assert uq.height == 65 and sorted(uq["shard"].unique()) == ["s00", "s01", "s02", "s03"]
    originals = [json.loads(line)["question"] for line in _gsm_lines(0, 6)]
    cluster_of = dict(zip(uq["question"], uq["cluster_id"]))
    for i, text in PARAPHRASES.items():
        assert cluster_of[text] == cluster_of[originals[i]], f"paraphrase of GSM8K test item {i} not clustered"
    sizes = uq.group_by("cluster_id").len()
    assert sorted(sizes["len"].to_list()) == [1] * 55 + [2] * 5  # nothing unrelated merged
    dups = uq.filter(~pl.col("representative"))
    # the GSM8K originals carry reference answers, so they represent their clusters
    assert dups["source"].to_list() == ["para"] * 5
    assert dups["duplicate_of"].is_in(uq.filter(pl.col("source") == "gsm")["query_id"].implode()).all()
    # the paraphrases as a benchmark: the originals are caught by embedding cosine, nothing else is
    flagged = uq.filter(pl.col("contaminated_by").is_not_null() & (pl.col("source") == "gsm"))
    assert sorted(flagged["question"]) == sorted(originals[i] for i in PARAPHRASES)
    for text, ev in zip(flagged["question"], flagged["contaminated_by"]):
        ev = json.loads(ev)
        item = list(PARAPHRASES).index(originals.index(text)) + 1  # the benchmark's line number
        assert {"benchmark": "gsm_para", "item_id": str(item), "method": "embedding"} in [
            {k: e[k] for k in ("benchmark", "item_id", "method")} for e in ev]
        assert all(e["score"] >= 0.9 for e in ev if e["method"] == "embedding")
    assert uq.filter(pl.col("source") == "para")["contaminated_by"].str.contains('"exact"').all()


def test_stability_and_incremental_embedding(project, instance, tmp_path):
    a = _write(tmp_path / "a.jsonl", _gsm_lines(0, 60))
    b = _write(tmp_path / "b.jsonl", _gsm_lines(40, 100))  # 20 texts shared with a
    sources = [{"name": "a", "kind": "file", "path": a, **GSM}]
    project.write({"shards": 8, "sources": sources})
    results, shards = _materialize_all(project, instance, ["a"])
    assert _meta(results["a"], "query_embeddings")["embedded_new"].value == 60
    # the global dedup ran once (the dedup_clusters asset) for the 8 shards, which only take their rows
    assert _meta(results["dedup_clusters"], "dedup_clusters")["recomputed"].value
    assert {_meta(r, "unique_queries")["dedup_clusters_version"].value for r in shards} == {project.lake().version(
        "dedup_clusters")}
    stored = project.lake().read("dedup_clusters")["shard"]  # in shard order: a shard's scan skips the others
    assert stored.n_unique() > 1 and stored.is_sorted()
    first = _unique(project)
    reps_before = set(first.filter("representative").select("source", "query_id").iter_rows())
    assert len(reps_before) == 60
    versions = [r.asset_materializations_for_node("unique_queries")[0].tags["dagster/data_version"] for r in shards]

    # nothing changed: the state is reused and every shard keeps its data version
    defs = project.defs()
    table_version = project.lake().version("dedup_clusters")
    assert not _meta(materialize(defs, instance, ["dedup_clusters"]), "dedup_clusters")["recomputed"].value
    assert project.lake().version("dedup_clusters") == table_version  # nothing rewritten
    again = [materialize(defs, instance, ["unique_queries"], partition_key=k) for k in project.cfg().shard_keys()]
    assert [r.asset_materializations_for_node("unique_queries")[0].tags["dagster/data_version"] for r in again] == versions

    # the same file under a second name: nothing new to embed, no new representative
    sources.append({"name": "a_copy", "kind": "file", "path": a, **GSM})
    project.write({"shards": 8, "sources": sources})
    results, _ = _materialize_all(project, instance, ["a_copy"])
    emb = _meta(results["a_copy"], "query_embeddings")
    assert emb["embedded_new"].value == 0 and emb["reused"].value == 60
    uq = _unique(project)
    assert set(uq.filter("representative").select("source", "query_id").iter_rows()) == reps_before
    copies = uq.filter(pl.col("source") == "a_copy")
    assert copies.height == 60 and not copies["representative"].any()
    assert (copies["duplicate_of"] == copies["query_id"]).all()

    # a new, higher-priority source: only its 40 new texts are embedded; earlier representatives stay
    sources.append({"name": "b", "kind": "file", "path": b, "priority": 10, **GSM})
    project.write({"shards": 8, "sources": sources})
    results, shards = _materialize_all(project, instance, ["b"])
    emb = _meta(results["b"], "query_embeddings")
    assert emb["embedded_new"].value == 40 and emb["reused"].value == 20
    uq = _unique(project)
    reps_after = set(uq.filter("representative").select("source", "query_id").iter_rows())
    assert reps_before <= reps_after
    assert {s for s, _ in reps_after - reps_before} == {"b"} and len(reps_after) == 100
    meta = _meta(results["dedup_clusters"], "dedup_clusters")
    assert meta["global"].value["duplicates_removed_by_source"] == {"a_copy": 60, "b": 20}
    assert meta["stats"].value["new_texts"] == 40  # the kNN searched the 40 new texts only
    # 60 + 60 + 60 rows, each written by exactly one shard
    assert uq.height == 180 and uq.group_by("shard").len()["len"].sum() == 180

    # one new question: only its shard gets a new data version, the other seven stay fresh
    versions = [r.asset_materializations_for_node("unique_queries")[0].tags["dagster/data_version"] for r in shards]
    c = _write(tmp_path / "c.jsonl", [json.dumps({"question": "How many legs do 7 spiders and 3 ants have together?"}) + "\n"])
    sources.append({"name": "c", "kind": "file", "path": c, "category": "math"})
    project.write({"shards": 8, "sources": sources})
    _, shards = _materialize_all(project, instance, ["c"])
    after = [r.asset_materializations_for_node("unique_queries")[0].tags["dagster/data_version"] for r in shards]
    target = _unique(project).filter(pl.col("source") == "c")["shard"][0]
    changed = [k for k, v0, v1 in zip(project.cfg().shard_keys(), versions, after) if v0 != v1]
    assert changed == [target]


def test_math500_is_flagged_inside_math_test5000(project, instance):
    project.write({
        "shards": 2,
        "dedup": {"semantic": False},  # exact and n-gram only: 5000 embeddings are too slow for a unit run
        "sources": [{"name": "math_test", "kind": "file", "path": str(shared("math/math_test5000.json.gz")),
                     "category": "math", "mapping": {"question": "problem", "answer": "solution",
                                                     "answer_format": "boxed", "id": "idx"}}],
        "benchmarks": [{"name": "math500", "path": str(shared("math/math500_test.jsonl")), "category": "math",
                        "mapping": {"question": "problem", "answer": "answer", "id": "unique_id"}}],
    })
    results, shards = _materialize_all(project, instance, ["math_test"], ["math500"], embed=False)
    lake = project.lake()
    bench = lake.scan("benchmarks", {"benchmark": "math500"}).collect()
    assert bench.height == 500 and bench["reference_answer"].null_count() == 0
    clean = lake.scan("clean_queries").collect()
    # every MATH-500 problem is in the MATH test set, and cleaning keeps them all (figures are inline [asy])
    in_math = clean.filter(pl.col("query_id").is_in(bench["query_id"].implode()))
    assert in_math.height == 500 and in_math["drop_reason"].null_count() == 500
    uq = _unique(project)
    assert uq.height == clean.filter(pl.col("drop_reason").is_null()).height
    evidence = uq.filter(pl.col("contaminated_by").is_not_null()).with_columns(
        methods=pl.col("contaminated_by").map_elements(lambda s: sorted({e["method"] for e in json.loads(s)}),
                                                       return_dtype=pl.List(pl.String)))
    exact = evidence.filter(pl.col("methods").list.contains("exact"))
    # all 500 are flagged by exact match, and nothing else is
    assert exact.height == 500
    assert set(exact["query_id"]) == set(in_math["query_id"])
    items = {e["item_id"] for s in exact["contaminated_by"] for e in json.loads(s) if e["method"] == "exact"}
    assert items == set(bench["item_id"])
    counts = _meta(results["dedup_clusters"], "dedup_clusters")["contaminated_by_benchmark_method"].value
    assert counts["math500"]["exact"] == 500
    usable = uq.filter(pl.col("representative") & pl.col("contaminated_by").is_null())
    assert not usable["query_id"].is_in(bench["query_id"].implode()).any()
