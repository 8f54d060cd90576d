"""The data card: counts, pass-rate histograms (DeepDistill Fig. 8), CV and length distributions."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from am_assets.difficulty.api import pass_rate_column  # noqa: E402

PASS_BINS = [0.0, 0.25, 0.5, 0.75, 1.0]  # n = 4 samples per teacher; other n are rounded to the nearest


def _counts(df: pl.DataFrame, *keys: str) -> list[dict]:
    if df.height == 0:
        return []
    return df.group_by(*keys).len("rows").sort(*keys).to_dicts()


def card_stats(mix: pl.DataFrame, decisions: pl.DataFrame) -> dict:
    """The numbers the card shows; tests compare them with the table."""
    return {
        "rows": mix.height,
        "queries": mix["query_id"].n_unique() if mix.height else 0,
        "tokens": int(mix["tokens"].sum()) if mix.height else 0,
        "by_stage": {r["stage"]: r["rows"] for r in _counts(mix, "stage")},
        "by_category_stage": _counts(mix, "category", "stage"),
        "by_teacher_stage": _counts(mix, "teacher", "stage"),
        "by_reason": {r["selection_reason"]: r["rows"] for r in _counts(mix, "selection_reason")},
        "stage1_decisions": _counts(decisions, "category", "decision"),
    }


def pass_rate_histogram(difficulty: pl.LazyFrame, teachers: Sequence[str]) -> pl.DataFrame:
    """Queries per (category, teacher, pass-rate bin), computed lazily over every shard."""
    frames = []
    for t in teachers:
        col = pass_rate_column(t)
        frames.append(difficulty.select("category", pl.col(col).alias("rate"))
                      .filter(pl.col("rate").is_not_null())
                      .with_columns((pl.col("rate") * 4).round(0).truediv(4).alias("rate"), pl.lit(t).alias("teacher"))
                      .group_by("category", "teacher", "rate").len("queries"))
    return pl.concat(frames).collect(engine="streaming").sort("category", "teacher", "rate") if frames else pl.DataFrame()


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_pass_rates(hist: pl.DataFrame, teachers: Sequence[str], path: Path) -> Path:
    cats = sorted(hist["category"].unique().to_list()) if hist.height else ["(none)"]
    fig, axes = plt.subplots(1, len(cats), figsize=(3.6 * len(cats), 3), squeeze=False)
    width = 0.8 / max(len(teachers), 1)
    for ax, cat in zip(axes[0], cats):
        sub = hist.filter(pl.col("category") == cat) if hist.height else hist
        total = {t: sub.filter(pl.col("teacher") == t)["queries"].sum() for t in teachers} if sub.height else {}
        for i, t in enumerate(teachers):
            got = dict(sub.filter(pl.col("teacher") == t).select("rate", "queries").iter_rows()) if sub.height else {}
            share = [got.get(b, 0) / total[t] if total.get(t) else 0 for b in PASS_BINS]
            ax.bar([j + i * width for j in range(len(PASS_BINS))], share, width, label=t)
        ax.set_xticks([j + width * (len(teachers) - 1) / 2 for j in range(len(PASS_BINS))], [str(b) for b in PASS_BINS])
        ax.set_title(cat)
        ax.set_xlabel("pass rate")
    axes[0][0].set_ylabel("share of queries")
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)


def plot_cv(difficulty: pl.LazyFrame, cv_threshold: Mapping[str, float], path: Path) -> Path:
    cv = difficulty.select("category", "cv").filter(pl.col("cv").is_not_null()).collect(engine="streaming")
    fig, ax = plt.subplots(figsize=(6, 3))
    for cat in sorted(cv["category"].unique().to_list()):
        ax.hist(cv.filter(pl.col("category") == cat)["cv"].to_numpy(), bins=30, alpha=0.5, label=cat)
    for cat, t in sorted(set(cv_threshold.items())):
        ax.axvline(t, color="k", linestyle="--", linewidth=0.8)
    ax.set_xlabel("CV of the reference teacher's verify scores (dashed: CV_t)")
    ax.set_ylabel("queries")
    if cv.height:
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_lengths(mix: pl.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3))
    for cat in sorted(mix["category"].unique().to_list()) if mix.height else []:
        ax.hist(mix.filter(pl.col("category") == cat)["tokens"].to_numpy(), bins=30, alpha=0.5, label=cat)
    ax.set_xlabel("response tokens")
    ax.set_ylabel("rows")
    if mix.height:
        ax.legend(fontsize=7)
    return _save(fig, path)


def _table(rows: list[dict], cols: Sequence[str]) -> str:
    if not rows:
        return "_none_\n"
    out = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return out + "".join("| " + " | ".join(str(r[c]) for c in cols) + " |\n" for r in rows)


def render(stats: dict, *, config: dict, input_versions: dict, plots: Mapping[str, Path], inline: bool,
           audit_md: str | None = None) -> str:
    """Markdown; plots linked relative to the card (file) or inlined as data URIs (Dagster UI)."""
    def img(name: str) -> str:
        p = plots[name]
        if inline:
            return f"![{name}](data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()})"
        return f"![{name}](plots/{p.name})"

    return "\n".join([
        "# Training mix: data card", "",
        f"**{stats['rows']} rows**, {stats['queries']} queries, {stats['tokens']} response tokens.", "",
        "## Rows per stage", _table([{"stage": k, "rows": v} for k, v in stats["by_stage"].items()], ["stage", "rows"]),
        "## Rows per category and stage", _table(stats["by_category_stage"], ["category", "stage", "rows"]),
        "## Rows per teacher and stage", _table(stats["by_teacher_stage"], ["teacher", "stage", "rows"]),
        "## Rows per selection reason",
        _table([{"selection_reason": k, "rows": v} for k, v in stats["by_reason"].items()], ["selection_reason", "rows"]),
        "## Stage I decisions (queries, before quality flags, quotas and budget)",
        _table(stats["stage1_decisions"], ["category", "decision", "rows"]),
        "## Pass rate per teacher and category (share of queries; DeepDistill Fig. 8)", img("pass_rates"), "",
        "## CV of the reference teacher's verify scores", img("cv"), "",
        "## Response length", img("lengths"), "",
        "## Verifier audit (second-method re-check of a sample of verdicts; see docs/verify.md)",
        audit_md or "_verifier_audit has not been materialized yet_\n",
        "## Settings", "```json", json.dumps(config, indent=1, sort_keys=True, default=str), "```", "",
        "## Input Delta versions", "```json", json.dumps(input_versions, sort_keys=True), "```", "",
    ])


def write_card(mix: pl.DataFrame, decisions: pl.DataFrame, difficulty: pl.LazyFrame, *, teachers: Sequence[str],
               cv_threshold: Mapping[str, float], config: dict, input_versions: dict,
               export_dir: Path, audit_md: str | None = None) -> tuple[dict, str, dict[str, Path]]:
    """Writes DATA_CARD.md, data_card.json and plots/*.png; returns (stats, markdown with inline
    images for Dagster metadata, plot paths). `audit_md`: the verifier audit table, when there is one."""
    plot_dir = Path(export_dir) / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    plots = {
        "pass_rates": plot_pass_rates(pass_rate_histogram(difficulty, teachers), teachers, plot_dir / "pass_rates.png"),
        "cv": plot_cv(difficulty, cv_threshold, plot_dir / "cv.png"),
        "lengths": plot_lengths(mix, plot_dir / "lengths.png"),
    }
    stats = card_stats(mix, decisions)
    (Path(export_dir) / "DATA_CARD.md").write_text(
        render(stats, config=config, input_versions=input_versions, plots=plots, inline=False, audit_md=audit_md))
    (Path(export_dir) / "data_card.json").write_text(json.dumps(stats, indent=1, sort_keys=True))
    card = render(stats, config=config, input_versions=input_versions, plots=plots, inline=True, audit_md=audit_md)
    return stats, card, plots
