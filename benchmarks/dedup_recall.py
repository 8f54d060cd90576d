"""Recall of planted paraphrases, false merges and throughput of each dedup embedding choice.

`.venv/bin/python -m benchmarks.dedup_recall [--planted 500] [--distinct 1500] [--scale 500000 ...]
[--no-quality] [--quality-embedders model2vec] [--knn-sample 0.1]`

1. Quality, on real text: `planted` GSM8K/MATH questions get a paraphrase (rules below: wording
   changes, numbers kept); `distinct` other questions are the negatives. For each choice (MiniLM,
   model2vec, MinHash pre-pass + each) the real dedup code clusters the corpus (dedup.knn +
   dedup.logic, cosine 0.9): recall = planted pairs in one cluster; false-merge rate = distinct
   questions clustered with anything; agreement = share of MiniLM's found pairs also found.
2. Throughput at each `--scale` n (distinct real questions with their numbers re-drawn, plus 5%
   planted paraphrases), model2vec as recommended at scale (pre-pass timed but off): wall and CPU
   seconds (with the load average) of the embedding, the number sets, the kNN within number sets,
   union-find, and of one global IVF index over all texts (the path without number sets: built over
   all n, searched for a `--knn-sample` share, scaled linearly in queries). Then 3.34M minutes for
   both paths: linear steps x N ratio, each kNN x N ratio^e with e measured on CPU seconds between
   the two largest runs (1.5, the IVF bound, with one run). Figures by wall (this machine's load)
   and by CPU seconds / 2 cores (the work on 2 idle cores).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import re
import time
from pathlib import Path

import numpy as np

from benchmarks._util import figure

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TARGET_N = 3_340_000
THRESHOLD = 0.9

# wording swaps (both directions are tried); numbers are never touched
SWAPS = [("how many", "what number of"), ("how much", "what amount of"), ("buys", "purchases"),
         ("bought", "purchased"), ("each", "every"), ("total", "overall"), ("wants to", "would like to"),
         ("gives", "hands"), ("sells", "sold"), ("find", "determine"), ("compute", "calculate"),
         ("what is", "what's"), ("there are", "there exist"), ("every day", "daily"), ("per", "for each"),
         ("costs", "is priced at"), ("money", "cash"), ("if", "suppose"), ("has", "owns"), ("makes", "earns"),
         ("store", "shop"), ("friends", "pals"), ("spends", "pays"), ("altogether", "in all"),
         ("the number of", "the count of"), ("let", "suppose"), ("evaluate", "work out"), ("is equal to", "equals")]
PREFIXES = ["Solve the following problem: ", "Question: ", "Please answer: ", "Math problem: ", ""]
_NUM = re.compile(r"\d+(?:\.\d+)?")


def load_questions() -> list[str]:
    """GSM8K train+test questions and MATH train+test problems (real text), deduplicated."""
    out = []
    for f in ("gsm8k/test.jsonl", "gsm8k/train.jsonl"):
        out += [json.loads(line)["question"] for line in open(DATA / f)]
    with gzip.open(DATA / "math/math_test5000.json.gz", "rt") as f:
        out += [json.loads(line)["problem"] for line in f if line.strip()]
    with open(DATA / "math/math_train7474_deepscaler.json") as f:
        text = f.read()
    rows = json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x.strip()]
    out += [r["problem"] for r in rows]
    return list(dict.fromkeys(q.strip() for q in out if q and q.strip()))


def paraphrase(text: str, rng: random.Random) -> str:
    """A rewording with the same numbers: 2-4 word swaps, maybe a sentence swap and an instruction prefix."""
    out = text
    swaps = SWAPS[:]
    rng.shuffle(swaps)
    done = 0
    for a, b in swaps:
        src, dst = (a, b) if rng.random() < 0.5 else (b, a)
        pattern = re.compile(rf"\b{re.escape(src)}\b", re.IGNORECASE)
        if pattern.search(out):
            out = pattern.sub(lambda m: dst.capitalize() if m.group(0)[0].isupper() else dst, out, count=1)
            done += 1
        if done >= rng.randint(2, 4):
            break
    sentences = re.split(r"(?<=[.!?])\s+", out)
    if len(sentences) >= 3 and rng.random() < 0.5:  # swap two context sentences (not the question)
        i = rng.randrange(len(sentences) - 2)
        sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
        out = " ".join(sentences)
    out = rng.choice(PREFIXES) + out
    return out if out != text else "Question: " + text


def renumber(text: str, rng: random.Random) -> str:
    """The same wording with new numbers: a different problem (a hard negative at scale)."""
    return _NUM.sub(lambda m: str(rng.randint(2, 999)), text)


def cluster(vecs: np.ndarray, texts: list[str], extra_edges=None, guard: bool = True) -> np.ndarray:
    """Cluster ids (ints) of the real dedup code: kNN pairs over cosine >= 0.9 (with the same numbers
    when `guard`, dedup.same_numbers), plus `extra_edges`, union-find."""
    import polars as pl

    from am_assets.dedup.knn import similar_pairs
    from am_assets.dedup.logic import cluster_texts
    from am_assets.dedup.nearexact import number_blocks

    n = len(vecs)
    # as dedup_clusters does: with the same-numbers rule the kNN searches within number sets
    a, b, s = similar_pairs(vecs, np.arange(n), THRESHOLD, 10, 50_000, "ivf", 16,
                            blocks=number_blocks(texts) if guard else None)
    if extra_edges is not None and len(extra_edges[0]):
        a, b, s = (np.concatenate([x, y]) for x, y in zip((a, b, s), extra_edges))
    texts = pl.DataFrame({"query_id": [f"q{i:08d}" for i in range(n)], "cluster_id": [None] * n},
                         schema={"query_id": pl.String, "cluster_id": pl.String})
    ids = cluster_texts(texts, (a, b, s))["cluster_id"].to_list()
    return np.unique(ids, return_inverse=True)[1]


def prepass(texts: list[str]) -> tuple[np.ndarray, tuple]:
    """MinHash-LSH near-exact anchors: (rows to embed, edges text -> anchor)."""
    from am_assets.dedup.nearexact import near_exact_anchor

    anchor, _ = near_exact_anchor(texts, 0.8)
    own = anchor == np.arange(len(texts))
    dup = np.flatnonzero(~own)
    return np.flatnonzero(own), (dup, anchor[dup], np.ones(len(dup), np.float32))


def embed(embedder, texts: list[str], rows: np.ndarray) -> tuple[np.ndarray, float]:
    """Vectors for all texts, embedding only `rows` (the others borrow their anchor's vector later)."""
    from am_assets.core.schema import normalize_text

    t0 = time.perf_counter()
    sub = embedder.encode([normalize_text(texts[i]) for i in rows.tolist()])
    seconds = time.perf_counter() - t0
    vecs = np.zeros((len(texts), sub.shape[1]), np.float32)
    vecs[rows] = sub
    return vecs, seconds


def quality(planted: int, distinct: int, seed: int = 0,
            kinds: tuple[str, ...] = ("sentence_transformers", "model2vec")) -> None:
    from resources.embedder import EmbedderResource

    rng = random.Random(seed)
    pool = load_questions()
    rng.shuffle(pool)
    originals = pool[:planted + distinct]
    paras = [paraphrase(q, rng) for q in originals[:planted]]
    texts = originals + paras
    n0 = len(originals)
    print(f"corpus: {planted} planted paraphrase pairs + {distinct} distinct questions "
          f"(GSM8K + MATH, {len(pool)} available)", flush=True)
    found = {}
    for kind in kinds:
        emb = EmbedderResource(kind=kind)
        emb.encode(["warm up"])
        name = "MiniLM" if kind == "sentence_transformers" else "model2vec"
        # every text embedded once; the pre-pass variant uses only its rows' vectors and is charged
        # for them pro rata (embedding time is linear in the texts: MiniLM is too slow to run twice)
        full, emb_s = embed(emb, texts, np.arange(len(texts)))
        for pre in (False, True):
            t0 = time.perf_counter()
            rows, edges = prepass(texts) if pre else (np.arange(len(texts)), None)
            pre_s = time.perf_counter() - t0
            vecs = full.copy()
            if pre:  # near-exact duplicates borrow their anchor's vector, as query_embeddings does
                vecs[edges[0]] = vecs[edges[1]]
            rate = len(texts) / (pre_s + emb_s * len(rows) / len(texts))
            for guard in (False, True):
                labels = cluster(vecs, texts, edges, guard)
                pairs = labels[:planted] == labels[n0:]
                sizes = np.bincount(labels)
                merged = sizes[labels[planted:n0]] > 1
                label = f"{'MinHash + ' if pre else ''}{name}{' + same numbers' if guard else ''}"
                found[label] = pairs
                print(f"{label}: recall of planted paraphrases: {pairs.mean():.3f} (target >= 0.95)", flush=True)
                print(f"{label}: false-merge rate on distinct questions: {merged.mean():.4f}", flush=True)
                if label != "MiniLM" and "MiniLM" in found:
                    base = found["MiniLM"]
                    print(f"{label}: recall of MiniLM's found pairs: {(pairs & base).sum() / max(base.sum(), 1):.3f}",
                          flush=True)
            print(f"{'MinHash + ' if pre else ''}{name}: texts embedded: {len(rows)} of {len(texts)}", flush=True)
            figure(f"{'MinHash + ' if pre else ''}{name}: queries/s (pre-pass + embedding)", rate, "queries/s")
        if kind == "sentence_transformers":
            figure("MiniLM: extrapolated embedding time for 3.34M texts", TARGET_N / (len(texts) / emb_s) / 3600, "hours")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def _timed(fn, *args):
    """(result, wall seconds, CPU seconds of this process and its reaped children (model2vec embeds
    large inputs in worker processes): every thread counts, so 2 busy cores = 2x wall)."""
    def cpu():
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    w, c = time.perf_counter(), cpu()
    out = fn(*args)
    return out, time.perf_counter() - w, cpu() - c


def scale_corpus(n: int, seed: int = 1) -> tuple[list[str], np.ndarray]:
    """n distinct texts: real questions with their numbers re-drawn (each a distinct problem; exact
    repeats dropped, as dedup_clusters makes one node of a text) plus 5% planted paraphrases.
    Returns (texts, original row of each paraphrase)."""
    rng = random.Random(seed)
    pool = load_questions()
    want = int(n * 0.95)
    base = dict.fromkeys(renumber(q, rng) for q in pool)
    i = 0
    while len(base) < want and i < 200 * len(pool):  # a question without digits adds nothing new after round 1
        base.setdefault(renumber(pool[i % len(pool)], rng))
        i += 1
    base = list(base)[:want]
    originals = np.array([rng.randrange(len(base)) for _ in range(n - len(base))], dtype=np.int64)
    texts = base + [paraphrase(base[j], rng) for j in originals.tolist()]
    return texts, originals


def scale(n: int, knn_sample: float, seed: int = 1, prepass_too: bool = True) -> dict:
    """Seconds (wall and CPU) of every step of semantic dedup at n texts with the static embedder."""
    from am_assets.core.schema import normalize_text
    from am_assets.dedup.knn import build_index, search, similar_pairs
    from am_assets.dedup.logic import cluster_texts
    from am_assets.dedup.nearexact import number_blocks
    from resources.embedder import EmbedderResource

    import polars as pl

    texts, originals = scale_corpus(n, seed)
    n = len(texts)
    para = np.arange(n - len(originals), n)
    fig = {}

    def step(name, fn, *args):
        before = _load()
        out, wall, cpu = _timed(fn, *args)
        fig[name] = (wall, cpu)
        figure(f"scale {n:,} texts: {name} ({before} -> {_load()}; CPU {cpu:,.1f} s)", wall, "s")
        return out

    if prepass_too:
        step("MinHash pre-pass (off in the timed path: near_exact false with model2vec)", prepass, texts)
    emb = EmbedderResource(kind="model2vec")
    emb.encode(["warm up"])
    vecs = step("model2vec embedding", lambda: np.ascontiguousarray(
        emb.encode([normalize_text(t) for t in texts]), dtype=np.float32))
    blocks = step("number sets (same_numbers blocks)", number_blocks, texts)
    sizes = np.bincount(blocks)
    print(f"scale {n:,} texts: {len(sizes):,} number sets, largest {sizes.max():,} texts, "
          f"{int(sizes[sizes > 1].sum()):,} texts in sets of 2 or more", flush=True)
    a, b, s = step("kNN within number sets (exact per set up to 50,000)", similar_pairs, vecs, np.arange(n),
                   THRESHOLD, 10, 50_000, "ivf", 16, None, blocks)
    frame = pl.DataFrame({"query_id": [f"q{i:08d}" for i in range(n)], "cluster_id": [None] * n},
                         schema={"query_id": pl.String, "cluster_id": pl.String})
    labels = step("union-find clustering", cluster_texts, frame, (a, b, s))["cluster_id"].to_numpy()
    together = labels[originals] == labels[para]
    cos = np.einsum("ij,ij->i", vecs[originals], vecs[para])
    reachable = cos >= THRESHOLD
    print(f"scale {n:,} texts: planted paraphrases in one cluster: {together.mean():.4f} "
          f"({together[reachable].mean():.4f} of the {int(reachable.sum()):,} at cosine >= {THRESHOLD}; "
          "the kNN finds every such pair when it searches exactly)", flush=True)
    # worst case: one global IVF index (same_numbers off, or texts without numbers): build over all
    # n, search a sample of the queries (planted paraphrases first) and scale the search linearly
    rng = np.random.default_rng(seed)
    m = max(len(para), int(n * knn_sample))
    rows = np.concatenate([para, rng.choice(n - len(para), size=m - len(para), replace=False)])
    index = step("global IVF index build (train + add, all texts)", build_index, vecs, 50_000, "ivf", 16)
    (sims, ids) = step(f"global IVF search of {len(rows):,} texts", search, index, vecs, rows, 11)
    found = (ids[:len(para)] == originals[:, None]).any(1)
    print(f"scale {n:,} texts: global IVF finds {found[reachable].mean():.4f} of the reachable planted pairs "
          "in the top 10 (number variants of a template crowd the slots)", flush=True)
    wall, cpu = fig[f"global IVF search of {len(rows):,} texts"]
    fig["global IVF search (all texts, scaled)"] = (wall * n / len(rows), cpu * n / len(rows))
    figure(f"scale {n:,} texts: global IVF search of all texts, scaled from the sample (CPU "
           f"{cpu * n / len(rows):,.1f} s)", wall * n / len(rows), "s")
    fig["n"] = n
    return fig


LINEAR = ("model2vec embedding", "number sets (same_numbers blocks)", "union-find clustering")
BLOCKED = "kNN within number sets (exact per set up to 50,000)"
GLOBAL = ("global IVF index build (train + add, all texts)", "global IVF search (all texts, scaled)")


def extrapolate(runs: list[dict]) -> None:
    """3.34M minutes from the largest run: linear steps x N ratio; the kNN x N ratio^e, with e measured
    between the two largest runs when there are two (else 1.5, the IVF bound: cells ~ sqrt(N))."""
    runs = sorted(runs, key=lambda r: r["n"])
    big = runs[-1]
    f = TARGET_N / big["n"]

    def exponent(keys):
        if len(runs) < 2:
            return 1.5
        small = runs[-2]
        t0, t1 = (sum(r[k][1] for k in keys) for r in (small, big))  # CPU seconds: less load noise
        return max(1.0, math.log(t1 / t0) / math.log(big["n"] / small["n"]))

    e_blocked, e_global = exponent([BLOCKED]), exponent(GLOBAL)
    if len(runs) >= 2:
        print(f"measured exponents (CPU seconds, {runs[-2]['n']:,} -> {big['n']:,} texts): kNN within number "
              f"sets {e_blocked:.2f}, global IVF {e_global:.2f}", flush=True)
    # CPU on 2 idle cores: faiss spreads over both (OpenMP); the embedding, regexes and union-find are
    # charged as if on one core (conservative: model2vec's tokenizer may use both)
    for col, label, lin_div, knn_div in ((0, "wall, this machine's load", 1, 1),
                                         (1, "CPU seconds, 2 idle cores: kNN on 2, the rest on 1", 1, 2),
                                         (1, "CPU seconds / 2 cores", 2, 2)):
        lin = sum(big[k][col] for k in LINEAR) * f / lin_div
        blocked = big[BLOCKED][col] * f ** e_blocked / knn_div
        glob = sum(big[k][col] for k in GLOBAL) * f ** e_global / knn_div
        figure(f"extrapolated 3.34M texts, embedding + dedup with the same-numbers rule ({label})",
               (lin + blocked) / 60, "minutes", "< 60")
        figure(f"extrapolated 3.34M texts, embedding + dedup with one global IVF (no number sets; {label})",
               (lin + glob) / 60, "minutes", "< 60")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--planted", type=int, default=500)
    ap.add_argument("--distinct", type=int, default=1500)
    ap.add_argument("--scale", type=int, action="append",
                    help="throughput run at this many texts (repeat for the exponent; default 500000; 0 skips)")
    ap.add_argument("--knn-sample", type=float, default=0.1, help="share of texts the global IVF search times")
    ap.add_argument("--no-prepass", action="store_true", help="do not time the MinHash pre-pass at scale")
    ap.add_argument("--no-quality", action="store_true", help="skip the recall table (MiniLM takes minutes)")
    ap.add_argument("--quality-embedders", nargs="+", default=["sentence_transformers", "model2vec"],
                    choices=["sentence_transformers", "model2vec"], help="embedders of the recall table")
    args = ap.parse_args()
    if not args.no_quality:
        quality(args.planted, args.distinct, kinds=tuple(args.quality_embedders))
    sizes = [x for x in (args.scale or [500_000]) if x]
    if sizes:
        extrapolate([scale(x, args.knn_sample, prepass_too=not args.no_prepass) for x in sizes])


if __name__ == "__main__":
    main()
