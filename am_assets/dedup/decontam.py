"""Benchmark decontamination: exact normalized match, word n-gram overlap, embedding cosine.

Every finding is evidence {benchmark, item_id, method, score}; a row is contaminated when it has any.
Exact matches make the n-gram and embedding findings for the same item redundant, so those are
dropped; evidence is sorted exact > ngram > embedding, strongest first, and capped.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import numpy as np
import polars as pl

from am_assets.core.schema import normalize_text

METHOD_RANK = {"exact": 0, "ngram": 1, "embedding": 2}
_WORD = re.compile(r"\w+")
_MAX_ITEMS_PER_GRAM = 50  # a gram shared by more items is boilerplate, not evidence


def words(text: str) -> list[str]:
    return _WORD.findall(normalize_text(text or ""))


def ngrams(text: str, n: int) -> set[int]:
    """Hashed word n-grams; a text shorter than n words is one gram (all its words)."""
    w = words(text)
    if not w:
        return set()
    if len(w) < n:
        return {hash(tuple(w))}
    return {hash(tuple(w[i:i + n])) for i in range(len(w) - n + 1)}


class NgramIndex:
    """n-gram -> benchmark items that contain it."""

    def __init__(self, items: list[tuple[str, str, str]], n: int):
        """`items`: (benchmark, item_id, question)."""
        self.n = n
        self.items = [(b, i) for b, i, _ in items]
        index: dict[int, list[int]] = defaultdict(list)
        for k, (_, _, text) in enumerate(items):
            for g in ngrams(text, n):
                index[g].append(k)
        self.index = {g: ks for g, ks in index.items() if len(ks) <= _MAX_ITEMS_PER_GRAM}

    def matches(self, text: str, min_share: float) -> list[tuple[int, float]]:
        """(item index, share of this text's n-grams found in the item) for items over `min_share`."""
        grams = ngrams(text, self.n)
        if not grams:
            return []
        counts: dict[int, int] = defaultdict(int)
        for g in grams:
            for k in self.index.get(g, ()):
                counts[k] += 1
        out = []
        for k, c in counts.items():
            share = c / len(grams)
            if share >= min_share:
                out.append((k, share))
        return out


def find_contamination(texts: pl.DataFrame, text_emb: np.ndarray | None, bench: pl.DataFrame,
                       bench_emb: np.ndarray | None, ngram: int, ngram_min_share: float,
                       cosine_threshold: float, max_evidence: int = 10, progress=None) -> pl.DataFrame:
    """Per text: `contaminated_by` JSON list of evidence, or null.

    `texts`: query_id, question (one row per unique text; row i <-> text_emb[i]).
    `bench`: benchmark, item_id, query_id, question (row j <-> bench_emb[j]).
    Embeddings are L2-normalized; pass None to skip the embedding method.
    """
    evidence: dict[int, dict[tuple[str, str, str], float]] = defaultdict(dict)
    if bench.height and texts.height:
        items = list(zip(bench["benchmark"].to_list(), bench["item_id"].to_list(), bench["question"].to_list()))
        # exact: same normalized-text hash
        by_qid: dict[str, list[int]] = defaultdict(list)
        for j, q in enumerate(bench["query_id"].to_list()):
            by_qid[q].append(j)
        for i, q in enumerate(texts["query_id"].to_list()):
            for j in by_qid.get(q, ()):
                evidence[i][(items[j][0], items[j][1], "exact")] = 1.0
        # n-gram overlap
        nindex = NgramIndex(items, ngram)
        questions = texts["question"].to_list()
        for i, text in enumerate(questions):
            for j, share in nindex.matches(text, ngram_min_share):
                evidence[i][(items[j][0], items[j][1], "ngram")] = round(share, 4)
            if progress is not None and ((i + 1) % 50_000 == 0 or i + 1 == len(questions)):
                progress(i + 1, len(questions))
        # embedding cosine, exact search (benchmarks are small)
        if text_emb is not None and bench_emb is not None and len(bench_emb):
            import faiss

            index = faiss.IndexFlatIP(bench_emb.shape[1])
            index.add(np.ascontiguousarray(bench_emb, dtype=np.float32))
            k = min(5, len(bench_emb))
            for start in range(0, len(text_emb), 50_000):
                sims, ids = index.search(np.ascontiguousarray(text_emb[start:start + 50_000]), k)
                for r, c in zip(*np.nonzero(sims >= cosine_threshold)):
                    j = int(ids[r, c])
                    evidence[start + int(r)][(items[j][0], items[j][1], "embedding")] = round(float(sims[r, c]), 4)
    out: list[str | None] = [None] * texts.height
    for i, found in evidence.items():
        exact_items = {(b, it) for (b, it, m) in found if m == "exact"}
        entries = [{"benchmark": b, "item_id": it, "method": m, "score": s}
                   for (b, it, m), s in found.items() if m == "exact" or (b, it) not in exact_items]
        entries.sort(key=lambda e: (METHOD_RANK[e["method"]], -e["score"], e["benchmark"], e["item_id"]))
        out[i] = json.dumps(entries[:max_evidence])
    return pl.DataFrame({"query_id": texts["query_id"], "contaminated_by": pl.Series(out, dtype=pl.String)})
