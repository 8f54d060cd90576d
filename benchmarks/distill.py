"""Generation throughput: `teacher_responses` (chunked commits to Delta) against raw `vllm.LLM.chat`.

    .venv/bin/python -m benchmarks.distill [--prompts 32] [--n 4] [--max-tokens 128] [--chunk-size 8]

Same model (the default SmolLM2-135M), same prompts (system prompt + question), same sampling, same
loaded engine, in one run. Requests are seeded, so both paths generate the same tokens and the ratio
measures the pipeline's overhead (queueing, parsing, Delta appends, the final compaction). Raw runs
before and after the pipeline run; the ratio uses their mean, which evens out a shared machine's drift.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

from benchmarks._util import figure


def _questions(count: int) -> list[str]:
    rng = random.Random(0)
    kinds = ["What is {a} + {b}?", "What is {a} times {b}?", "Explain how to compute {a} - {b} step by step.",
             "Is {a} a prime number? Explain.", "Write a short story about the number {a}."]
    return [rng.choice(kinds).format(a=rng.randint(2, 999), b=rng.randint(2, 99)) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.distill")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--chunk-size", type=int, default=8)
    args, _ = parser.parse_known_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

    import polars as pl

    from am_assets.distill.generate import fill_partition
    from am_assets.distill.logic import build_conversation
    from am_assets.core.schema import query_id
    from resources.config import SamplingConfig, VllmTeacher
    from resources.engines import EnginesResource, vllm_sampling_params
    from resources.lake import LakeResource

    teacher = VllmTeacher(name="bench", kind="vllm", model="smollm2-135m", chunk_size=args.chunk_size,
                          sampling=SamplingConfig(n=args.n, temperature=0.7, max_tokens=args.max_tokens, seed=0))
    questions = _questions(args.prompts)
    queries = pl.DataFrame({"query_id": [query_id(q) for q in questions], "question": questions,
                            "category": ["math"] * len(questions)}).unique("query_id", keep="first").sort("query_id")
    convs = [build_conversation(teacher.system_prompt, q) for q in queries["question"]]
    engines = EnginesResource()  # its own model pool, closed at the end
    engine = engines.engine(teacher)
    llm = engine.llm
    params = vllm_sampling_params(teacher.sampling)
    llm.chat(convs[:2], params, use_tqdm=False)  # warm-up

    def raw() -> tuple[int, float]:
        start = time.perf_counter()
        outs = llm.chat(convs, params, use_tqdm=False)
        return sum(len(c.token_ids) for o in outs for c in o.outputs), time.perf_counter() - start

    raw1 = raw()
    with tempfile.TemporaryDirectory() as tmp:
        lake = LakeResource(root=os.path.join(tmp, "lake"))
        start = time.perf_counter()
        result = fill_partition(lake, teacher, "s00", queries, engines=engines, log=lambda _: None)
        pipe_s = time.perf_counter() - start
        pipe_tokens = int(result.rows["completion_tokens"].sum())
    raw2 = raw()
    engines.close()  # else the process waits at exit for the vLLM engine core

    raw_rate = (raw1[0] + raw2[0]) / (raw1[1] + raw2[1])
    pipe_rate = pipe_tokens / pipe_s
    print(f"prompts {len(convs)} x n {args.n}, max_tokens {args.max_tokens}, chunk_size {args.chunk_size}; "
          f"tokens raw {raw1[0]} / {raw2[0]}, pipeline {pipe_tokens}", flush=True)
    figure("raw vllm.LLM.chat output tok/s (before)", raw1[0] / raw1[1])
    figure("raw vllm.LLM.chat output tok/s (after)", raw2[0] / raw2[1])
    figure("raw vllm.LLM.chat output tok/s (mean)", raw_rate)
    figure("teacher_responses output tok/s", pipe_rate)
    print(f"teacher_responses / raw throughput: {pipe_rate / raw_rate:.3f} (target >= 0.95)", flush=True)


if __name__ == "__main__":
    main()
