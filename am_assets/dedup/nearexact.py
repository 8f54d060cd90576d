"""Near-exact duplicates before embedding: a strong-normalization hash plus MinHash-LSH (rensa).

A text whose word bigrams overlap another's with Jaccard >= a threshold AND that carries the same
numbers is a near-exact duplicate: it is not embedded, it borrows the other text's embedding (and
dedup_clusters links the two). The number check matters for math: "5 apples" and "7 apples" are
different problems with near-identical wording.

MinHash signatures come from `rensa` (Rust; batched digests, ~76k texts/s here); LSH banding and
candidate grouping are a few numpy/Polars lines over its digest matrix, and every candidate pair is
verified with the exact Jaccard of the two shingle sets, so LSH only decides what is compared.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

from am_assets.dedup.logic import UnionFind

NUM_PERM = 128
_SIGNATURE_CHUNK = 10_000
BANDS = 16  # 16 bands x 8 rows: a pair at Jaccard 0.8 is a candidate with p ~0.95, at 0.9 ~1.0
SEED = 1
_WORD = re.compile(r"[^\W_]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def strong_key(text: str) -> str:
    """Case, punctuation and spacing removed: 'What is 2+2?' and 'what is 2 + 2' share a key."""
    return " ".join(_WORD.findall(text.casefold()))


def shingles(text: str) -> set[str]:
    """Word bigrams of the strongly normalized text (one unigram for a one-word text)."""
    w = _WORD.findall(text.casefold())
    if len(w) < 2:
        return set(w)
    return {f"{a} {b}" for a, b in zip(w, w[1:])}


# "one" is left out: it is as often an article ("one glass costs $5" = "a glass costs $5")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero - two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split()) if w != "-"}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)


def numbers(text: str) -> tuple[str, ...]:
    """The numbers of a text, sorted (digits as written, minus thousands commas; 'three' = 3)."""
    found = [n.replace(",", "") for n in _NUMBER.findall(text)]
    found += [_NUMBER_WORDS[w.lower()] for w in _NUMBER_WORD.findall(text)]
    return tuple(sorted(found))


def same_numbers(a: str, b: str) -> bool:
    """The two texts mention the same set of numbers (a paraphrase keeps them; a variant changes them)."""
    return set(numbers(a)) == set(numbers(b))


def number_blocks(questions: list[str] | pl.Series) -> np.ndarray:
    """(n,) int64 block ids: two texts share one iff they mention the same set of numbers (`same_numbers`).

    Polars regexes over the whole column (a Python regex per text took 24 s per 500k texts here); the
    block id is the dense rank of the joined sorted number set, so equal ids mean equal sets exactly."""
    q = pl.col("q").fill_null("")
    digits = q.str.extract_all(_NUMBER.pattern).list.eval(pl.element().str.replace_all(",", "", literal=True))
    words = q.str.extract_all(r"(?i)" + _NUMBER_WORD.pattern).list.eval(
        pl.element().str.to_lowercase().replace_strict(_NUMBER_WORDS, return_dtype=pl.String))
    key = pl.concat_list(digits, words).list.unique().list.sort().list.join("|")
    frame = pl.DataFrame({"q": pl.Series(questions, dtype=pl.String)})
    return frame.select(key.rank("dense").cast(pl.Int64) - 1).to_series().to_numpy()


def number_guard(edges: tuple[np.ndarray, np.ndarray, np.ndarray], questions: list[str],
                 blocks: np.ndarray | None = None) -> tuple:
    """Only the edges (a, b, similarity) whose two texts carry the same numbers: embeddings, static ones
    most, put "a train leaves at 3 pm ... 40 mph" and its 4 pm / 55 mph variant far above the threshold.
    `blocks`: `number_blocks(questions)` when already computed."""
    a, b, sim = edges
    if not len(a):
        return edges
    blocks = number_blocks(questions) if blocks is None else blocks
    keep = blocks[a] == blocks[b]
    return a[keep], b[keep], sim[keep]


def signatures(sets: list[set[str]]) -> np.ndarray:
    """(n, NUM_PERM) uint32 MinHash digests. Pass a chunk at a time (lsh_keys: _SIGNATURE_CHUNK):
    rensa hands its digests back as Python lists, 128 ints a text, ~4.6 GB at 1M texts in one call."""
    import rensa

    if not sets:
        return np.zeros((0, NUM_PERM), np.uint32)
    matrix = rensa.RMinHash.digest_matrix_from_token_sets([sorted(s) or [""] for s in sets], NUM_PERM, SEED)
    return np.asarray(matrix.to_rows(), dtype=np.uint32).reshape(len(sets), NUM_PERM)


def band_keys(sigs: np.ndarray, bands: int = BANDS) -> np.ndarray:
    """(n, bands) uint64: one hash per band of rows (FNV-style mix of the band's digests)."""
    n, perm = sigs.shape
    r = perm // bands
    x = sigs[:, :bands * r].reshape(n, bands, r).astype(np.uint64)
    h = np.full((n, bands), np.uint64(1469598103934665603))
    with np.errstate(over="ignore"):
        for j in range(r):
            h = (h ^ x[:, :, j]) * np.uint64(1099511628211)
    return h


def lsh_keys(texts: list[str]) -> np.ndarray:
    """(n, BANDS + 1) uint64: the band keys of each text's MinHash, then a hash of its strong key.

    A chunk of texts at a time, keeping only these 136 bytes a text: the full digest matrix, its
    uint64 copy and the shingle sets of every text took ~5.5 GB at 1M texts."""
    n = len(texts)
    keys = np.empty((n, BANDS + 1), np.uint64)
    for start in range(0, n, _SIGNATURE_CHUNK):
        part = texts[start:start + _SIGNATURE_CHUNK]
        end = start + len(part)
        keys[start:end, :BANDS] = band_keys(signatures([shingles(t) for t in part]))
        strong = pl.Series([strong_key(t) for t in part], dtype=pl.String)
        keys[start:end, BANDS] = strong.hash(seed=SEED).to_numpy()
    return keys


def candidate_pairs(keys: np.ndarray) -> np.ndarray:
    """(m, 2) index pairs a < b sharing a key in one column of `keys` (lsh_keys: a band, or the
    strong key). A column at a time: one long frame of every (text, column) took ~1 GB at 1M texts."""
    n = keys.shape[0]
    idx = np.arange(n, dtype=np.int64)
    found = []
    for col in range(keys.shape[1]):
        groups = (pl.DataFrame({"i": idx, "k": keys[:, col]}).group_by("k").agg(pl.col("i").sort())
                  .filter(pl.col("i").list.len() > 1))
        # each member with the group's first member: enough for connectivity, linear in group size
        found.append(groups.select(a=pl.col("i").list.first(), b=pl.col("i").list.slice(1)).explode("b"))
    pairs = pl.concat(found).unique()
    if pairs.height == 0:
        return np.zeros((0, 2), np.int64)
    return pairs.select("a", "b").to_numpy().astype(np.int64)


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def near_exact_anchor(texts: list[str], threshold: float, preferred: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """For each text, the index of the text whose embedding it may use (itself when it must be embedded).

    Components of verified near-exact pairs share one anchor: a `preferred` member (e.g. already
    embedded) if there is one, else the lowest index. Returns (anchor indices, verified pairs).
    """
    n = len(texts)
    if n < 2:
        return np.arange(n, dtype=np.int64), 0
    pairs = candidate_pairs(lsh_keys(texts))
    # the numbers first (cheap, and most candidates of templated text differ in them), then shingle
    # sets and strong keys for the texts of the pairs left only
    nums = {i: numbers(texts[i]) for i in np.unique(pairs).tolist()}
    pairs = [(a, b) for a, b in pairs.tolist() if nums[a] == nums[b]]
    del nums
    involved = sorted({i for pair in pairs for i in pair})
    sets = {i: shingles(texts[i]) for i in involved}
    keys = {i: strong_key(texts[i]) for i in involved}
    uf = UnionFind(n)
    verified = 0
    for a, b in pairs:
        if keys[a] == keys[b] or jaccard(sets[a], sets[b]) >= threshold:
            uf.union(a, b)
            verified += 1
    roots = uf.roots()
    pref = preferred if preferred is not None else np.zeros(n, bool)
    # per component: first preferred member, else the lowest index
    order = np.lexsort((np.arange(n), ~pref, roots))
    ranked = roots[order]
    first = order[np.r_[True, ranked[1:] != ranked[:-1]]]
    first_of_root = np.empty(n, dtype=np.int64)
    first_of_root[roots[first]] = first
    return first_of_root[roots], verified
