"""reasoning-gym rows that are not math (logic puzzles, games, ...): the dataset's own `score_answer`.

Math-Verify compares numbers and expressions; a knights-and-knaves or word-ladder answer is text with
its own rules, which the generator that made the question knows. The row's metadata carries
{"reasoning_gym": {"dataset", "entry_metadata", ...}} (am_assets/ingest/adapters.reasoning_gym_rows).
"""

from __future__ import annotations

import functools
import json

from am_assets.verify.base import Verdict, Verifier, no_reference
from am_assets.core.boxed import last_boxed

NAME = "reasoning-gym"


@functools.cache
def version() -> str:
    from importlib.metadata import version as v

    return f"reasoning-gym-{v('reasoning-gym')}/1"


def rg_spec(metadata: str | None) -> dict | None:
    if not metadata:
        return None
    try:
        meta = json.loads(metadata)
    except (json.JSONDecodeError, TypeError):
        return None
    spec = meta.get("reasoning_gym") if isinstance(meta, dict) else None
    return spec if isinstance(spec, dict) and spec.get("dataset") else None


@functools.cache
def _scorer(dataset: str):
    import reasoning_gym

    return reasoning_gym.get_score_answer_fn(dataset)


def verify_rg(answer: str, reference: str | None, question: str, spec: dict) -> Verdict:
    if reference is None:
        return no_reference("reference_answer")
    extracted = last_boxed(answer)
    candidate = extracted if extracted is not None else (answer or "").strip()
    entry = {"question": question, "answer": reference, "metadata": spec.get("entry_metadata") or {}}
    try:
        score = float(_scorer(spec["dataset"])(candidate, entry))
    except Exception as e:  # noqa: BLE001 - the scorer failed: no verdict
        return Verdict(0.0, "verifier_error", {"error": f"{spec['dataset']}.score_answer: {type(e).__name__}: {e}"[:300]})
    return Verdict(score, "ok", {"dataset": spec["dataset"], "extracted": candidate[:200],
                                 "from": "boxed" if extracted is not None else "answer_text"})


VERIFIER = Verifier(
    key="reasoning-gym", name=NAME, version=lambda ctx: version(),
    applies=lambda row: rg_spec(row.get("metadata")) is not None,  # non-math rows of a reasoning-gym source
    verify=lambda rows, ctx: [verify_rg(r["_answer"], r.get("reference_answer"), r.get("question") or "",
                                        rg_spec(r.get("metadata"))) for r in rows])
