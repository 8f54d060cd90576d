"""LLM-as-judge through the engine API (resources/engines.py): any configured teacher can judge.

On CPU the default judge is the first vllm teacher (the packaged SmolLM2-135M by default): weak, but a
real model. Its replies are parsed by am_assets/verify/judging.py; unreadable replies are status
`unparseable`, engine failures `verifier_error`, never scores.
"""

from __future__ import annotations

import hashlib

import dagster as dg


def _judging():
    # imported late: resources/ is imported by am_assets' asset modules, not the other way round
    from am_assets.verify import judging

    return judging


def judge_teacher(cfg, name: str | None):
    """The configured judge teacher, or the first vllm teacher, or None."""
    if name:
        return cfg.teacher(name)
    return next((t for t in cfg.teachers if t.kind == "vllm"), None)


class JudgeResource(dg.ConfigurableResource):
    """Judge settings: which teacher judges (default: the first vllm teacher) and its reply length."""

    config_path: str
    teacher: str | None = None
    max_tokens: int = 64

    def _teacher(self):
        from resources.config import load_config

        t = judge_teacher(load_config(self.config_path), self.teacher)
        if t is None:
            raise RuntimeError("no judge: set verification.judge_teacher or configure a vllm teacher")
        return t

    def version(self) -> str:
        """Part of the verdict cache key: judge model + settings + prompt version."""
        try:
            t = self._teacher()
            spec = f"{t.kind}:{getattr(t, 'model', '')}:{self.max_tokens}:{_judging().PROMPT_VERSION}"
        except Exception as e:  # noqa: BLE001 - no judge configured: verdicts will say so
            spec = f"none:{e}"
        return "judge/" + hashlib.blake2b(spec.encode(), digest_size=6).hexdigest()

    def complete(self, prompts: list[str]) -> list:
        """One engine Completion (or None) per prompt."""
        from resources.config import SamplingConfig
        from resources.engines import get_engine

        teacher = self._teacher()
        engine = get_engine(teacher)
        sampling = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=self.max_tokens, seed=0)
        convs = [[{"role": "user", "content": p}] for p in prompts]
        outs = engine.chat(convs, sampling)
        return [o[0] if o else None for o in outs]

    def _rate(self, prompts: list[str], parse) -> list:
        from am_assets.verify.base import Verdict

        if not prompts:
            return []
        try:
            replies = self.complete(prompts)
        except Exception as e:  # noqa: BLE001 - the judge failed: no verdict
            err = Verdict(0.0, "verifier_error", {"error": f"judge: {type(e).__name__}: {e}"[:500]})
            return [err] * len(prompts)
        out = []
        for c in replies:
            if c is None or c.finish_reason == "error":
                out.append(Verdict(0.0, "verifier_error", {"error": f"judge: {getattr(c, 'error', None) or 'no reply'}"}))
            else:
                out.append(parse(c.text))
        return out

    def rate_science(self, items: list[tuple[str, str, str]]) -> list:
        """[(question, reference, answer)] -> 0-5 Verdicts."""
        j = _judging()
        return self._rate([j.science_prompt(q, r, a) for q, r, a in items], j.parse_science)

    def rate_other(self, items: list[tuple[str, str]]) -> list:
        """[(question, answer)] -> Verdicts of (coherence + correctness + helpfulness) / 12."""
        j = _judging()
        return self._rate([j.other_prompt(q, a) for q, a in items], j.parse_other)

    def math_equivalent(self, items: list[tuple[str, str, str]]) -> list[bool | None]:
        """[(question, reference, answer)] -> True/False, None when the reply is unreadable or the judge failed."""
        if not items:
            return []
        try:
            j = _judging()
            replies = self.complete([j.math_prompt(q, r, a) for q, r, a in items])
        except Exception:  # noqa: BLE001 - a failed second opinion keeps Math-Verify's verdict
            return [None] * len(items)
        return [None if c is None or c.finish_reason == "error" else j.parse_math(c.text) for c in replies]
