"""The verifier registry: the first verifier (in this order) whose `applies(row)` holds verifies the row.

Adding a verifier: one module defining `VERIFIER = Verifier(key, name, applies, version, verify)`
(am_assets/verify/base.py) and one line here, before the verifiers it should take rows from
(docs/verify.md, "Adding a verifier", has a worked example).
"""

from __future__ import annotations

from am_assets.verify import choice, code_tests, ifeval, judged, math_verifier, rgym
from am_assets.verify.base import Verifier

REGISTRY: tuple[Verifier, ...] = (
    choice.VERIFIER,  # options + a letter, any category
    math_verifier.VERIFIER,
    code_tests.VERIFIER,
    ifeval.VERIFIER,
    judged.SCIENCE,
    rgym.VERIFIER,  # non-math reasoning-gym rows
    judged.OTHER,  # the fallback: applies to every row
)

# rows that no verifier saw (the generation failed, or the query is gone)
NONE = ("none", "none/1")


def by_key(registry: tuple[Verifier, ...] = REGISTRY) -> dict[str, Verifier]:
    keys = [v.key for v in registry]
    if len(set(keys)) != len(keys) or "none" in keys:
        raise ValueError(f"verifier keys must be unique and not 'none': {keys}")
    return {v.key: v for v in registry}
