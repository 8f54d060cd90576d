"""LLM-as-judge transport: which teacher judges and how long it may reply; the prompts go out through
the engine API (resources/engines.py), so any configured teacher can judge.

On CPU the default judge is the first vllm teacher (the packaged SmolLM2-135M by default): weak, but a
real model. The prompts and the parsing of replies are verify's (am_assets/verify/judging.py `Judge`,
which calls `complete` here): resources/ import nothing above them.
"""

from __future__ import annotations

import hashlib

import dagster as dg


def judge_teacher(cfg, name: str | None):
    """The configured judge teacher, or the first vllm teacher, or None."""
    if name:
        return cfg.teacher(name)
    return next((t for t in cfg.teachers if t.kind == "vllm"), None)


class JudgeResource(dg.ConfigurableResource):
    """Judge settings: which teacher judges (default: the first vllm teacher) and its reply length."""

    teacher: str | None = None
    max_tokens: int = 64

    def judge_teacher(self, cfg):
        t = judge_teacher(cfg, self.teacher)
        if t is None:
            raise RuntimeError("no judge: set verification.judge_teacher or configure a vllm teacher")
        return t

    def version(self, cfg, prompt_version: str) -> str:
        """Part of the verdict cache key: judge model + settings + the caller's prompt version."""
        try:
            t = self.judge_teacher(cfg)
            spec = f"{t.kind}:{getattr(t, 'model', '')}:{self.max_tokens}:{prompt_version}"
        except Exception as e:  # noqa: BLE001 - no judge configured: verdicts will say so
            spec = f"none:{e}"
        return "judge/" + hashlib.blake2b(spec.encode(), digest_size=6).hexdigest()

    def complete(self, cfg, engines, prompts: list[str]) -> list:
        """One engine Completion (or None) per prompt; `engines` is the step's EnginesResource."""
        from resources.config import SamplingConfig

        engine = engines.engine(self.judge_teacher(cfg))
        sampling = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=self.max_tokens, seed=0)
        outs = engine.chat([[{"role": "user", "content": p}] for p in prompts], sampling)
        return [o[0] if o else None for o in outs]
