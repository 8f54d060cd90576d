"""SFT samples/s on CPU, and eval generation tokens/s through the eval path versus raw vLLM.

    .venv/bin/python -m benchmarks.train_eval

1. SFT: the Pipes training script's `train()` on GSM8K train chats (AM format), SmolLM2-135M, a few
   steps at global batch 4; samples/s = steps x global batch / training wall time (model load excluded).
2. Eval: GSM8K test prompts as eval_scores builds them (system prompt + math suffix), k samples each,
   generated (a) through the engine API with the eval samples frame and (b) by raw `vllm.LLM.chat` with
   the same SamplingParams, in the same process on the same vllm.LLM; ratio = (a) / (b).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

DATA = Path(os.environ.get("AM_DISTILL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SFT_STEPS, SFT_BATCH = 6, 4
EVAL_ITEMS, EVAL_K, EVAL_MAX_TOKENS = 16, 4, 128


def _gsm8k(name: str, n: int) -> list[dict]:
    with open(DATA / "gsm8k" / name) as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def sft_samples_per_s() -> float:
    import polars as pl

    from am_assets.train.logic import to_sft_records
    from am_assets.train.sft_script import _StdoutLog, train
    from resources.config import AM_SYSTEM_PROMPT, TrainingConfig
    from resources.models import resolve_model

    chats = []
    for r in _gsm8k("train.jsonl", SFT_STEPS * SFT_BATCH):
        work, final = r["answer"].split("####")
        chats.append(json.dumps([{"role": "system", "content": AM_SYSTEM_PROMPT}, {"role": "user", "content": r["question"]},
                                 {"role": "assistant", "content": f"<think>{work.strip()}</think> <answer>{final.strip()}</answer>"}]))
    t = TrainingConfig(max_steps=SFT_STEPS, global_batch=SFT_BATCH, per_device_batch=SFT_BATCH, max_seq_length=512)
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.jsonl"
        train_file.write_text("".join(json.dumps(r) + "\n" for r in to_sft_records(pl.DataFrame({"messages": chats}), True)))
        spec = {"model_id": "bench", "base_path": str(resolve_model(t.base_model)), "train_file": str(train_file),
                "output_dir": str(Path(tmp) / "out"), "training": t.model_dump(mode="json"),
                "total_steps": SFT_STEPS, "grad_accumulation": 1}

        class Quiet(_StdoutLog):
            def info(self, msg):
                pass

        summary = train(spec, Quiet(), lambda rec: None)
    return summary["steps"] * SFT_BATCH / summary["train_runtime_s"]


def eval_tokens_per_s(engines) -> tuple[float, float]:
    import polars as pl

    from am_assets.evaluate.logic import conversations, samples_frame
    from resources.config import EvaluationConfig, SamplingConfig, VllmTeacher
    from resources.engines import vllm_sampling_params

    ev = EvaluationConfig()
    bench = pl.DataFrame([{"item_id": str(i), "query_id": f"q{i}", "category": "math", "question": r["question"]}
                          for i, r in enumerate(_gsm8k("test.jsonl", EVAL_ITEMS))])
    chats = conversations(bench, ev.system_prompt, ev.math_suffix)
    sampling = SamplingConfig(n=EVAL_K, temperature=ev.temperature, top_p=ev.top_p, max_tokens=EVAL_MAX_TOKENS, seed=0)
    engine = engines.engine(VllmTeacher(name="bench", kind="vllm", sampling=sampling, max_model_len=ev.max_model_len))
    llm = engine.llm
    llm.chat(chats[:2], vllm_sampling_params(sampling), use_tqdm=False)  # warm-up

    start = time.perf_counter()
    raw = llm.chat(chats, vllm_sampling_params(sampling), use_tqdm=False)
    raw_tps = sum(len(c.token_ids) for o in raw for c in o.outputs) / (time.perf_counter() - start)

    start = time.perf_counter()
    frame = samples_frame(bench, engine.chat(chats, sampling), "bench", "gsm8k")
    eval_tps = int(frame["completion_tokens"].sum()) / (time.perf_counter() - start)
    return eval_tps, raw_tps


def main() -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"SFT samples/s on CPU: {sft_samples_per_s():.3f} (SmolLM2-135M, {SFT_STEPS} steps x batch {SFT_BATCH}, "
          f"GSM8K chats, fp32; shares the cores with whatever else runs)", flush=True)
    from resources.engines import EnginesResource

    engines = EnginesResource()
    try:
        eval_tps, raw_tps = eval_tokens_per_s(engines)
    finally:
        engines.close()  # else the process waits at exit for the vLLM engine core
    print(f"eval generation tokens/s: {eval_tps:,.1f} vs raw vLLM {raw_tps:,.1f} on the same {EVAL_ITEMS} prompts "
          f"x {EVAL_K} samples (ratio {eval_tps / raw_tps:.2f}, target >= 0.95)", flush=True)


if __name__ == "__main__":
    main()
