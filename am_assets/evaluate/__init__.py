"""Stage: evaluate. eval_scores [model x benchmark] (vLLM + the verification verifiers), eval_report."""

from am_assets.evaluate.assets import eval_report, eval_scores, trained_not_worse_than_base


def build(cfg) -> list:
    return [eval_scores, eval_report, trained_not_worse_than_base]
