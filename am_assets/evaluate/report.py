"""Base versus trained model, per benchmark: a frame, a markdown table and a bar chart."""

from __future__ import annotations

import io

import polars as pl

COMPARISON_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String, "base": pl.String, "benchmark": pl.String, "k": pl.Int64,
    "base_pass_at_1": pl.Float64, "pass_at_1": pl.Float64, "delta_pass_at_1": pl.Float64,
    "base_pass_at_k": pl.Float64, "pass_at_k": pl.Float64,
}


def comparison(scores: pl.DataFrame, registry: pl.DataFrame) -> pl.DataFrame:
    """One row per (trained model, benchmark) evaluated for both the model and its base."""
    if not scores.height or not registry.height:
        return pl.DataFrame(schema=COMPARISON_SCHEMA)
    cols = ["model", "benchmark", "k", "pass_at_1", "pass_at_k"]
    trained = scores.select(cols).join(registry.select("model_id", pl.col("base_key").alias("base")),
                                       left_on="model", right_on="model_id")
    base = scores.select(pl.col("model").alias("base"), "benchmark",
                         pl.col("pass_at_1").alias("base_pass_at_1"), pl.col("pass_at_k").alias("base_pass_at_k"))
    out = trained.join(base, on=["base", "benchmark"]).with_columns(
        (pl.col("pass_at_1") - pl.col("base_pass_at_1")).alias("delta_pass_at_1"))
    return out.select(list(COMPARISON_SCHEMA)).cast(COMPARISON_SCHEMA).sort("model", "benchmark")


def regressions(cmp: pl.DataFrame, tolerance: float = 0.0) -> pl.DataFrame:
    """Rows where the trained model's pass@1 is below its base's by more than `tolerance`."""
    return cmp.filter(pl.col("delta_pass_at_1") < -tolerance)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def comparison_markdown(cmp: pl.DataFrame) -> str:
    if not cmp.height:
        return "No trained model has scores beside its base yet."
    lines = ["| model | base | benchmark | k | base pass@1 | pass@1 | delta | base pass@k | pass@k |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in cmp.iter_rows(named=True):
        delta = "n/a" if r["delta_pass_at_1"] is None else f"{100 * r['delta_pass_at_1']:+.1f}"
        lines.append(f"| {r['model']} | {r['base']} | {r['benchmark']} | {r['k']} | {_pct(r['base_pass_at_1'])} | "
                     f"{_pct(r['pass_at_1'])} | {delta} | {_pct(r['base_pass_at_k'])} | {_pct(r['pass_at_k'])} |")
    return "\n".join(lines) + "\n\n(percent; pass@1 = mean accuracy over k samples per item)"


def comparison_png(cmp: pl.DataFrame) -> bytes:
    """Grouped bars: pass@1 of base and trained model per (model, benchmark)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [f"{r['benchmark']}\n{r['model'][:18]}" for r in cmp.iter_rows(named=True)]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(labels) + 1), 3.4), dpi=90)
    ax.bar(x - 0.2, [100 * (v or 0) for v in cmp["base_pass_at_1"].to_list()], 0.4, label="base")
    ax.bar(x + 0.2, [100 * (v or 0) for v in cmp["pass_at_1"].to_list()], 0.4, label="trained")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
