"""Quality flags per response (kept as columns, never used to drop here): think/answer present,
truncated, and the papers' high-frequency n-gram rule: a `n`-token string occurring more than
`max_count` times across the partition marks every response that contains it as repetitive."""

from __future__ import annotations

import itertools
import random

import numpy as np
import polars as pl

# The old `re` pattern r"\w+|[^\w\s]" spelt out for Rust's regex, whose \w adds combining marks and drops
# No/Nl digits (², ½) and whose \s lacks \x1c-\x1f: with these classes the two agree on every code
# point that Python's Unicode tables assign (tests/test_verify_quality.py checks all of them).
_WORD = r"\p{L}\p{N}_"
TOKEN_PATTERN = rf"[{_WORD}]+|[^{_WORD}\s\x1c-\x1f]"
_SKIPPED = r"[\s\x1c-\x1f]+"  # what the tokens leave out
BATCH_BYTES = 32 << 20  # text bytes per batch: ~9M tokens of prose; at worst (a token a byte) ~1.5 GB in flight;
# fewer, larger batches cost fewer count merges: a 31 MiB partition took 1.32 s in one batch, 1.70 s in four
KEEP_BYTES = 256 << 20  # pass 1's windows kept for pass 2: ~22M windows, a 250k-response partition of short answers


def repetitive_flags(texts: list[str | None] | pl.Series, n: int = 20, max_count: int = 20, *,
                     batch_bytes: int = BATCH_BYTES, keep_bytes: int = KEEP_BYTES) -> tuple[list[bool], int]:
    """(flag per text, number of frequent n-grams): `count_and_flag` without the counts."""
    flags, counts = count_and_flag(texts, n, max_count, batch_bytes=batch_bytes, keep_bytes=keep_bytes)
    return flags.tolist(), int((counts["count"] > max_count).sum())


def count_and_flag(texts: list[str | None] | pl.Series, n: int = 20, max_count: int = 20, *,
                   batch_bytes: int = BATCH_BYTES, keep_bytes: int = KEEP_BYTES) -> tuple[np.ndarray, pl.DataFrame]:
    """(flag per text, n-gram key -> count). Occurrences are counted across all texts
    (repeats inside one text count too, as a looping response is the usual culprit). Two passes
    over byte-bounded batches: count the n-grams, then flag the texts holding a frequent one. Pass 1
    keeps its window tables (12 bytes a window) up to `keep_bytes`, so pass 2 tokenizes and hashes
    again only the batches beyond that (a partition of long traces; most partitions fit)."""
    series = pl.Series("text", texts, dtype=pl.String)
    batches, kept = _batches(series, batch_bytes), []

    def counted():
        room = keep_bytes
        for w in _windows(batches, n):
            room -= 12 * w.height
            if room >= 0:
                kept.append(w)
            yield w

    counts = _ngram_counts(counted())
    frequent = counts.filter(pl.col("count") > max_count).select("key")
    flags = np.zeros(len(series), dtype=bool)
    if frequent.height:
        mark_holders(flags, itertools.chain(kept, _windows(batches[len(kept):], n)), frequent)
    return flags, counts


def mark_holders(flags: np.ndarray, windows, keys: pl.DataFrame, rows: np.ndarray | None = None) -> None:
    """Set the flag of each text whose windows (`_windows` tables) hold one of `keys`; `rows` maps
    the windows' text index to a flag index when the windows cover a subset of the texts."""
    for w in windows:
        held = w.join(keys.select("key"), on="key", how="semi")["i"].to_numpy()
        flags[held if rows is None else rows[held]] = True


def holding(texts: pl.Series, n: int, keys: pl.DataFrame, *, probes: list[tuple[str, str]] | None = None,
            batch_bytes: int = BATCH_BYTES) -> np.ndarray:
    """Per text: does it hold one of the n-gram `keys` (a frame with a `key` column)? With `probes`
    (`gram_probes` of those n-grams), only the texts that contain a probe's rare token and then,
    whitespace removed, its whole n-gram are tokenized: a text holding an n-gram always does both,
    since its tokens are runs of the text and cover every character but whitespace."""
    flags = np.zeros(len(texts), dtype=bool)
    if keys.height == 0:
        return flags
    texts = texts.cast(pl.String).fill_null("")
    rows = np.arange(len(texts))
    if probes is not None:  # two Aho-Corasick passes, the second (after a regex) over few texts
        rows = np.flatnonzero(texts.str.contains_any(sorted({rare for _, rare in probes})).to_numpy())
        stripped = texts.gather(rows).str.replace_all(_SKIPPED, "")
        rows = rows[stripped.str.contains_any(sorted({gram for gram, _ in probes})).to_numpy()]
        texts = texts.gather(rows)
    mark_holders(flags, _windows(_batches(texts, batch_bytes), n), keys, rows)
    return flags


def ngram_windows(texts: pl.Series, n: int) -> list[pl.DataFrame]:
    """(i, key) per n-token window of each text, in byte-bounded batches (for a few texts: pass 1 alone)."""
    return list(_windows(_batches(texts.cast(pl.String).fill_null(""), BATCH_BYTES), n))


def ngram_counts(windows: list[pl.DataFrame]) -> pl.DataFrame:
    """key -> count over `ngram_windows` tables."""
    return _ngram_counts(iter(windows))


def gram_probes(texts: pl.Series, n: int, keys: pl.DataFrame) -> list[tuple[str, str]]:
    """For each n-gram of `keys` that occurs in `texts` (a few texts): (its tokens joined without
    separators, the token of it that the fewest of `texts` contain, the longest on a tie)."""
    texts = texts.cast(pl.String).fill_null("").alias("text")
    found = (pl.concat([_ngram_keys(offset, batch, n) for offset, batch in _batches(texts, BATCH_BYTES)])
             .with_columns(pos=pl.int_range(pl.len()).over("i"))  # windows come in token order
             .join(keys.select("key"), on="key", how="semi").unique("key"))
    if found.height == 0:
        return []
    tokens = texts.str.extract_all(TOKEN_PATTERN)
    grams = (found.with_columns(tokens.gather(found["i"]).alias("tok"))
             .select(pl.col("tok").list.slice(pl.col("pos"), n)).with_columns(gram=pl.col("tok").list.join(""))
             .unique("gram"))
    spread = tokens.list.unique().explode().drop_nulls().value_counts(name="texts").rename({"text": "tok"})
    best = (grams.explode("tok").join(spread, on="tok", how="left")
            .sort("texts", pl.col("tok").str.len_chars(), descending=[False, True])
            .group_by("gram", maintain_order=True).first())
    return list(best.select("gram", "tok").iter_rows())


def _batches(series: pl.Series, batch_bytes: int) -> list[tuple[int, pl.Series]]:
    """(offset, texts) slices of about batch_bytes each; a longer text is a batch of its own."""
    size = series.str.len_bytes().fill_null(0).cast(pl.Int64)
    batch = (size.cum_sum() - size) // max(batch_bytes, 1)
    out, offset = [], 0
    for length in batch.unique_counts():  # batch ids ascend, so counts come in batch order
        out.append((offset, series.slice(offset, length)))
        offset += length
    return out


def _ngram_keys(offset: int, texts: pl.Series, n: int) -> pl.DataFrame:
    """(i: text index, key: n-gram hash), one row per n-token window that stays inside its text, in
    the order of their first tokens."""
    # key = sum over positions t of (an odd 64-bit multiplier of t) * (hash of token t), wrapping mod 2**64:
    # one pass per position over a u64 column, where a struct of n shifted columns would hold n of them
    rng = random.Random(n)
    key = pl.lit(0, pl.UInt64)
    for t in range(n):
        key = key + pl.col("h").shift(-t) * pl.lit(rng.getrandbits(64) | 1, pl.UInt64)
    return (pl.LazyFrame({"text": texts}).with_row_index("i", offset)
            .select("i", tok=pl.col("text").str.extract_all(TOKEN_PATTERN))
            .filter(pl.col("tok").list.len() >= n)
            .explode("tok").select("i", h=pl.col("tok").hash())
            .select("i", key=key)
            # a window starting at row r stays inside its text when row r + n - 1 is still that text's
            .filter(pl.col("i") == pl.col("i").shift(-(n - 1))).collect())


def _windows(batches: list[tuple[int, pl.Series]], n: int):
    for offset, texts in batches:
        yield _ngram_keys(offset, texts, n)


def _ngram_counts(windows) -> pl.DataFrame:
    """key -> count over the batches' windows. Batch tables are merged once they outgrow the merged one, so
    the merging costs O(total log batches) and memory stays about twice the distinct n-grams."""
    merged = pl.DataFrame(schema={"key": pl.UInt64, "count": pl.UInt32})
    pending: list[pl.DataFrame] = []
    for w in windows:
        # sort + run lengths: 0.25 s for 7.4M windows where a hash group_by took 0.5-1.3 s
        pending.append(w["key"].sort().rle().struct.unnest().select(key="value", count="len"))
        if sum(p.height for p in pending) >= merged.height:
            merged = _merge([merged, *pending])
            pending = []
    return _merge([merged, *pending])


def _merge(tables: list[pl.DataFrame]) -> pl.DataFrame:
    tables = [t for t in tables if t.height]
    if len(tables) <= 1:  # a lone table's keys are distinct already
        return tables[0] if tables else pl.DataFrame(schema={"key": pl.UInt64, "count": pl.UInt32})
    return pl.concat(tables).lazy().group_by("key").agg(pl.col("count").sum()).collect()


def has_text(value: str | None) -> bool:
    return bool(value and value.strip())


def _load_ppl_model(name: str) -> tuple:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from resources.models import resolve_model

    path = resolve_model(name)
    model = AutoModelForCausalLM.from_pretrained(str(path))
    model.eval()
    return AutoTokenizer.from_pretrained(str(path)), model


def perplexities(texts: list[str], model_name: str, max_tokens: int = 1024, models=None) -> list[float | None]:
    """Perplexity of each text (the papers: query + answer) under a causal LM; None for empty text.
    `models`: the step's ModelPool (the LM loads once per pool); without one it loads for this call."""
    import math

    import torch

    tok, model = (models.get(("perplexity", model_name), lambda: _load_ppl_model(model_name)) if models is not None
                  else _load_ppl_model(model_name))
    out: list[float | None] = []
    with torch.no_grad():
        for text in texts:
            ids = tok(text, return_tensors="pt", truncation=True, max_length=max_tokens)["input_ids"]
            if ids.shape[1] < 2:
                out.append(None)
                continue
            loss = model(input_ids=ids, labels=ids).loss
            out.append(float(math.exp(loss.item())))
    return out
