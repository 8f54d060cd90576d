"""The fast CPU dedup path: MinHash near-exact pre-pass, the model2vec static embedder, and the
dedup_clusters asset's incremental behaviour (what is embedded and searched when a source is added)."""

import glob
import json
import os
import random
import tempfile
from typing import ClassVar

import numpy as np
import polars as pl
import pytest

from am_assets.dedup.nearexact import near_exact_anchor
from resources.embedder import EmbedderResource
from tests.conftest import materialize, shared

GSM = {"mapping": {"question": "question", "answer": "answer", "answer_format": "gsm8k"}, "category": "math"}


def _gsm(start, stop):
    with open(shared("gsm8k/test.jsonl")) as f:
        return [json.loads(line)["question"] for line in f.readlines()[start:stop]]


def test_minhash_prepass_merges_near_exact_duplicates_only():
    q = _gsm(0, 40)
    texts = q + [
        "question: " + q[0].upper().replace("?", ""),      # 40: case, punctuation, a prefix -> near-exact of 0
        q[1].replace("How many", "how  many") + "  ",       # 41: spacing/case only -> near-exact of 1
        q[2].replace("80,000", "90,000"),                    # 42: other numbers: a different problem
        "Rewrite: " + " ".join(reversed(q[3].split())),      # 43: same words, other order: not near-exact
    ]
    anchor, verified = near_exact_anchor(texts, 0.8)
    assert anchor[40] == 0 and anchor[41] == 1
    assert anchor[42] == 42 and anchor[43] == 43
    assert (anchor[:40] == np.arange(40)).all()  # 40 distinct GSM8K questions stay apart
    assert verified == 2
    # an already embedded member is preferred as the anchor (its vector exists)
    preferred = np.zeros(len(texts), bool)
    preferred[40] = True
    anchor, _ = near_exact_anchor(texts, 0.8, preferred)
    assert anchor[0] == 40 and anchor[40] == 40


def test_minhash_prepass_does_not_depend_on_its_chunks(monkeypatch):
    """The pre-pass keeps only band keys per chunk of texts and re-reads the texts of candidate pairs:
    chunk boundaries (here one text in a chunk with its duplicate, the other across) change nothing."""
    import am_assets.dedup.nearexact as nearexact

    q = _gsm(40, 100)
    texts = q + [q[5].lower() + " ", "Please answer: " + q[33], q[50].replace("$", "")] + q[:3]
    whole, verified = near_exact_anchor(texts, 0.8)
    assert verified >= 5 and (whole != np.arange(len(texts))).sum() >= 5
    for chunk in (1, 7, 64):
        monkeypatch.setattr(nearexact, "_SIGNATURE_CHUNK", chunk)
        anchor, again = near_exact_anchor(texts, 0.8)
        assert anchor.tolist() == whole.tolist() and again == verified


def test_semantic_edges_need_the_same_numbers():
    from am_assets.dedup.nearexact import number_guard, same_numbers

    assert same_numbers("She eats three eggs and buys 16 more.", "Buying 16 more eggs, she eats 3.")
    assert same_numbers("A house for $80,000.", "a house that cost 80000 dollars")
    assert not same_numbers("Tom has 5 apples.", "Tom has 7 apples.")
    questions = ["Tom has 5 apples.", "Tom owns 5 apples.", "Tom has 7 apples."]
    a, b, sim = number_guard((np.array([0, 0]), np.array([1, 2]), np.array([0.97, 0.99], np.float32)), questions)
    assert a.tolist() == [0] and b.tolist() == [1] and sim.tolist() == [pytest.approx(0.97)]


def test_knn_within_number_sets_finds_a_paraphrase_crowded_out_by_number_variants():
    """With the same-numbers rule the kNN searches within number sets (number_blocks): equal sets share
    a block exactly as same_numbers says, and a paraphrase whose global top-k is full of number variants
    of its template (closer than the paraphrase) is still found."""
    from am_assets.dedup.knn import similar_pairs
    from am_assets.dedup.nearexact import number_blocks, numbers

    texts = ["She eats three eggs and buys 16 more.", "Buying 16 more eggs, she eats 3.", "Tom has 5 apples.",
             "Tom has 7 apples.", "A house for $80,000.", "a house that cost 80000 dollars", "No numbers here",
             "", "Eleven or 11?", "3.5 and 3,5"]
    blocks = number_blocks(texts)
    for i in range(len(texts)):
        for j in range(len(texts)):
            assert (blocks[i] == blocks[j]) == (set(numbers(texts[i])) == set(numbers(texts[j]))), (texts[i], texts[j])
    # row 0 and its paraphrase (row 1, cosine ~0.95) plus 12 variants with other numbers at cosine ~0.99
    rng = np.random.default_rng(0)
    base = rng.standard_normal(64).astype(np.float32)
    noise = rng.standard_normal((14, 64)).astype(np.float32)
    vecs = base + np.concatenate([[0 * noise[0]], [0.33 * noise[1]], 0.1 * noise[2:]]).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    questions = ["Tom has 5 apples and 3 pears.", "Tom owns 5 apples and 3 pears."] + [
        f"Tom has {5 + i} apples and 3 pears." for i in range(1, 13)]
    assert 0.9 < vecs[0] @ vecs[1] < min(vecs[0] @ vecs[i] for i in range(2, 14))
    a, b, _ = similar_pairs(vecs, np.array([0]), 0.9, 5, 50_000)  # row 0 is the new text
    assert len(a) == 5 and (0, 1) not in set(zip(a.tolist(), b.tolist()))  # its global top-5: all variants
    a, b, sim = similar_pairs(vecs, np.array([0]), 0.9, 5, 50_000, blocks=number_blocks(questions))
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1)] and sim[0] == pytest.approx(vecs[0] @ vecs[1], abs=1e-5)
    a, b, _ = similar_pairs(vecs, np.arange(14), 0.9, 5, 50_000, blocks=number_blocks(questions))
    assert list(zip(a.tolist(), b.tolist())) == [(0, 1)]  # all searched: variants never link across sets
    # only new texts are searched: row 13 alone links to nothing (its number set is its own)
    a, _, _ = similar_pairs(vecs, np.array([13]), 0.9, 5, 50_000, blocks=number_blocks(questions))
    assert len(a) == 0


def _recall(vecs, n):
    """Share of pairs (i, n + i) with cosine >= 0.9 through the real kNN (as dedup_clusters does)."""
    from am_assets.dedup.knn import similar_pairs

    a, b, _ = similar_pairs(vecs, np.arange(len(vecs)), 0.9, 10, 50_000)
    found = {(int(x), int(y)) for x, y in zip(a, b)}
    return np.mean([(i, n + i) in found for i in range(n)])


def test_model2vec_loads_the_local_distilled_copy_and_agrees_with_minilm():
    from benchmarks.dedup_recall import paraphrase
    from resources.models import models_root
    from resources.static_embedder import DISTILLED_NAME

    static = EmbedderResource(kind="model2vec")
    assert static.embedder_id().startswith(DISTILLED_NAME)
    assert (models_root() / DISTILLED_NAME / "model.safetensors").is_file()  # built once, loaded from disk
    assert not glob.glob(str(models_root() / f"{DISTILLED_NAME}.partial-*"))
    rng = random.Random(0)
    originals = _gsm(100, 160)
    texts = originals + [paraphrase(q, rng) for q in originals]
    sv = static.encode(texts)
    assert sv.shape == (120, 256) and np.allclose(np.linalg.norm(sv, axis=1), 1, atol=1e-4)
    mv = EmbedderResource().encode(texts)
    static_recall, minilm_recall = _recall(sv, 60), _recall(mv, 60)
    # benchmarks/dedup_recall.py (docs/dedup.md): MiniLM ~0.95+, model2vec a few points lower
    assert minilm_recall >= 0.9 and static_recall >= 0.8, (minilm_recall, static_recall)
    assert static_recall >= minilm_recall - 0.15
    # distinct questions stay apart: no unrelated pair of originals over the threshold
    sims = sv[:60] @ sv[:60].T
    assert (sims[np.triu_indices(60, 1)] < 0.9).mean() > 0.99


def test_the_embedding_cache_reads_the_vectors_of_the_files_holding_a_hit_only(tmp_path, monkeypatch):
    """A new source's texts are looked up by key first; only the cache files holding one of them are
    read for their vectors (none when nothing is cached), and the hits come back as stored."""
    from am_assets.dedup import embeddings
    from am_assets.dedup.embeddings import embed_with_cache, with_text_hash
    from resources.lake import LakeResource

    monkeypatch.setattr(embeddings, "EMBED_CHUNK", 40)  # one cache file per 40 texts
    lake, embedder = LakeResource(root=str(tmp_path)), EmbedderResource(kind="model2vec")
    texts = with_text_hash(pl.DataFrame({"question": _gsm(0, 120)}))
    first, _, stats = embed_with_cache(lake, embedder, texts)
    assert stats["embedded_new"] == 120
    assert len(lake.partition_files("embedding_cache", {"embedder": embedder.embedder_id()})) == 3
    read = []  # how many files each scan_files call got
    scan_files = lake.scan_files
    monkeypatch.setattr(LakeResource, "scan_files",
                        lambda self, dt, uris: read.append(len(uris)) or scan_files(dt, uris))
    new = with_text_hash(pl.DataFrame({"question": _gsm(200, 230)}))
    assert embeddings._cached(lake, embedder.embedder_id(), new).height == 0
    assert read == [3]  # the keys of the 3 files; no file holds a hit, so no vector is read
    read.clear()
    mixed = pl.concat([new, texts.slice(45, 5)])  # 5 texts of the second file
    vecs, _, stats = embed_with_cache(lake, embedder, mixed)
    assert read[:2] == [3, 1] and (stats["reused"], stats["embedded_new"]) == (5, 30)
    assert np.array_equal(vecs[30:], first[45:50])  # the cached vectors, as stored


class CountingEmbedder(EmbedderResource):
    """The real static embedder; records how many texts each encode call got."""

    calls: ClassVar[list[int]] = []

    def encode(self, texts, progress=None, every=2000):
        CountingEmbedder.calls.append(len(texts))
        return super().encode(texts, progress, every)


def test_dedup_clusters_asset_is_incremental_and_lock_free(project, instance, tmp_path):
    import dagster as dg

    lock_glob = os.path.join(tempfile.gettempdir(), "am-distill-dedup-*.lock")
    locks_before = set(glob.glob(lock_glob))
    q = _gsm(0, 45)
    a = tmp_path / "a.jsonl"
    a.write_text("".join(json.dumps({"question": t, "answer": "#### 1"}) + "\n" for t in q[:30])
                 + json.dumps({"question": "Question: " + q[0].replace("?", ""), "answer": "#### 1"}) + "\n")
    b = tmp_path / "b.jsonl"
    b.write_text("".join(json.dumps({"question": t, "answer": "#### 1"}) + "\n" for t in q[25:45]))
    sources = [{"name": "a", "kind": "file", "path": str(a), **GSM}]
    project.write({"shards": 2, "sources": sources, "dedup": {"embedder": {"kind": "model2vec"}}})

    def run(names):
        base = project.defs()
        defs = dg.Definitions(assets=list(base.assets), resources={**base.resources, "embedder": CountingEmbedder(
            kind="model2vec")})
        for s in names:
            materialize(defs, instance, ["raw_queries", "clean_queries", "query_embeddings"], partition_key=s)
        result = materialize(defs, instance, ["dedup_clusters"])
        for k in project.cfg().shard_keys():
            materialize(defs, instance, ["unique_queries"], partition_key=k)
        return result.asset_materializations_for_node("dedup_clusters")[0].metadata

    CountingEmbedder.calls = []
    meta = run(["a"])
    # 31 texts, one a near-exact duplicate of GSM8K item 0: 30 embedded, none again by dedup_clusters
    assert CountingEmbedder.calls == [30]
    assert meta["recomputed"].value and meta["stats"].value["new_texts"] == 31
    assert meta["stats"].value["near_exact_pairs"] == 1
    lake = project.lake()
    clusters = lake.read("dedup_clusters")
    assert clusters.height == 31
    near = clusters.filter(pl.col("question").str.starts_with("Question: "))
    assert near["cluster_id"][0] == clusters.filter(pl.col("question") == q[0])["cluster_id"][0]
    first = dict(zip(clusters["query_id"], clusters["cluster_id"]))

    # a source of 20 questions, 5 already known: 15 embedded, kNN for 15 texts, old clusters unchanged
    sources.append({"name": "b", "kind": "file", "path": str(b), **GSM})
    project.write({"shards": 2, "sources": sources, "dedup": {"embedder": {"kind": "model2vec"}}})
    CountingEmbedder.calls = []
    meta = run(["b"])
    assert CountingEmbedder.calls == [15]
    assert meta["stats"].value["new_texts"] == 15 and meta["stats"].value["decontaminated_texts"] == 15
    clusters = lake.read("dedup_clusters")
    assert clusters.height == 51
    assert all(dict(zip(clusters["query_id"], clusters["cluster_id"]))[k] == c for k, c in first.items())
    uq = lake.read("unique_queries")
    assert uq.sort("source", "query_id").select(clusters.drop("shard").columns).equals(
        clusters.sort("source", "query_id").drop("shard").select(clusters.drop("shard").columns))
    # no machine-local lock, no hidden table
    assert set(glob.glob(lock_glob)) == locks_before
    assert not lake.exists("dedup_state")
