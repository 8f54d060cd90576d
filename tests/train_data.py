"""A tiny real training mix (GSM8K train chats in the AM format) and tiny SFT settings, for tests."""

from __future__ import annotations

import json

import polars as pl

from resources.config import AM_SYSTEM_PROMPT

# a few steps of SmolLM2-135M on CPU: enough to see the loss fall, cheap enough for CI
TINY_TRAINING = {"max_steps": 3, "global_batch": 2, "per_device_batch": 2, "max_seq_length": 384,
                 "learning_rate": 8e-5, "warmup_fraction": 0.05}


def gsm8k_mix(path, n: int = 8) -> pl.DataFrame:
    """`training_mix`-shaped rows from the first n GSM8K train problems (worked solution as the answer)."""
    rows = []
    with open(path) as f:
        for i, line in zip(range(n), f):
            rec = json.loads(line)
            work, final = rec["answer"].split("####")
            chat = [{"role": "system", "content": AM_SYSTEM_PROMPT},
                    {"role": "user", "content": rec["question"]},
                    {"role": "assistant", "content": f"<think>{work.strip()}</think> <answer>{final.strip()}</answer>"}]
            rows.append({"query_id": f"gsm8k_train_{i}", "category": "math", "messages": json.dumps(chat)})
    return pl.DataFrame(rows)
