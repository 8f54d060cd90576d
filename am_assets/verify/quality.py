"""Quality flags per response (kept as columns, never used to drop here): think/answer present,
truncated, and the papers' high-frequency n-gram rule: a `n`-token string occurring more than
`max_count` times across the partition marks every response that contains it as repetitive."""

from __future__ import annotations

import collections
import hashlib
import re

_TOKEN = re.compile(r"\w+|[^\w\s]")


def repetitive_flags(texts: list[str], n: int = 20, max_count: int = 20) -> tuple[list[bool], int]:
    """(flag per text, number of frequent n-grams). Occurrences are counted across all texts
    (repeats inside one text count too, as a looping response is the usual culprit)."""
    counts: collections.Counter[bytes] = collections.Counter()
    per_text = []
    for t in texts:
        toks = _TOKEN.findall(t or "")
        keys = [hashlib.blake2b(" ".join(toks[i:i + n]).encode(), digest_size=8).digest()
                for i in range(len(toks) - n + 1)]
        counts.update(keys)
        per_text.append(set(keys))
    frequent = {k for k, c in counts.items() if c > max_count}
    return [bool(keys & frequent) for keys in per_text], len(frequent)


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
