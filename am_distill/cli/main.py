"""`am-distill`: run the pipeline from the command line, open the UI, validate the config.

    am-distill demo                 materialize every asset, every partition, in dependency order
    am-distill materialize -s raw_queries -p rg_arith
    am-distill backfill --teacher smol_hot   every partition of one teacher, then what depends on it
    am-distill lineage <id>         trace a training-mix row, response id or query id to its raw row
    am-distill ui                   dagster dev on 127.0.0.1:3000 with the project-local instance
    am-distill validate             check pipeline.yaml and the definitions
    am-distill check rows.jsonl     the verdict on each row (query columns + response), one JSON line each
    am-distill export [--out DIR]   the training mix as AM 1.4M / AM 40M / chat JSONL and Parquet
    am-distill deploy local|ray [--write DIR]   the production profile's dagster.yaml + workspace.yaml

Runs go to the Dagster instance in $DAGSTER_HOME (default: ./.dagster), so the UI shows them.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]  # the repository root (am_distill/cli/main.py)


def _setup_env() -> None:
    import warnings

    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_DIR / ".dagster"))
    from resources.instance import prepare_home

    # several am-distill processes may start on a fresh home at once: the first creates it, under a lock
    prepare_home(Path(os.environ["DAGSTER_HOME"]), PROJECT_DIR / "scripts" / "dagster.yaml")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def cmd_demo(args) -> None:
    import dagster as dg

    from am_distill.cli.runner import materialize_all
    from definitions import build_defs

    defs = build_defs(args.config)
    start = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        report = materialize_all(defs, instance, force=args.force, parallel=args.parallel)
    print(f"\nDone in {time.perf_counter() - start:.0f} s; {len(report.ran)} partitions ran. Wall time per asset:")
    for name, sec in report.seconds.items():
        print(f"  {name:<24} {sec:7.1f} s")
    print(summary(defs))


def summary(defs) -> str:
    """Where the results are: data card, model, eval table, UI."""
    import polars as pl

    cfg, lake = defs.resources["pipeline"].load(), defs.resources["lake"]
    lines = [f"\nLake (Delta tables):  {lake.root}",
             f"Data card:            {cfg.mix.export_dir / 'DATA_CARD.md'}  (exports beside it)"]
    models = lake.read("model_registry")
    if models.height:
        latest = models.sort("created_at").row(-1, named=True)
        lines.append(f"Trained model:        {latest['path']}")
    scores = lake.read("eval_scores")
    if scores.height:
        cols = [c for c in ("model", "benchmark", "pass_at_1", "pass_at_k", "k", "n_items") if c in scores.columns]
        with pl.Config(tbl_rows=50, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
            lines += [f"Eval table:           {lake.uri('eval_scores')}", str(scores.select(cols).sort(cols[:2]))]
    lines.append("Open the UI:          make ui   (then http://127.0.0.1:3000)")
    return "\n".join(lines)


def cmd_materialize(args) -> None:
    from am_distill.cli.runner import materialize_all

    import dagster as dg

    from definitions import build_defs

    defs = build_defs(args.config)
    with dg.DagsterInstance.get() as instance:
        materialize_all(defs, instance, select=args.select, partition=args.partition, force=args.force,
                        parallel=args.parallel)


def cmd_backfill(args) -> None:
    from am_distill.cli.runner import materialize_all

    import dagster as dg

    from definitions import build_defs

    defs = build_defs(args.config)
    cfg = defs.resources["pipeline"].load()
    cfg.teacher(args.teacher)  # fails clearly on an unknown name
    selection = dg.AssetSelection.assets("teacher_responses").downstream().resolve(defs.resolve_asset_graph())
    with dg.DagsterInstance.get() as instance:
        report = materialize_all(defs, instance, select=[k.to_user_string() for k in selection],
                                  only={"teacher": args.teacher}, parallel=args.parallel)
    for name, sec in report.seconds.items():
        print(f"  {name:<24} {sec:7.1f} s")


def cmd_lineage(args) -> None:
    from am_assets.core.lineage import render, trace
    from definitions import build_defs

    lake = build_defs(args.config).resources["lake"]
    try:
        print(render(trace(lake, args.id)))
    except KeyError as e:
        raise SystemExit(str(e.args[0])) from None


def cmd_ui(args) -> None:
    import dagster as dg

    from resources.instance import fail_dead_runs

    with dg.DagsterInstance.get() as instance:  # else the UI shows runs of killed processes as running
        fail_dead_runs(instance)
    exe = Path(sys.executable).parent / "dagster"
    env = dict(os.environ, AM_DISTILL_CONFIG=str(Path(args.config or PROJECT_DIR / "pipeline.yaml").resolve()))
    subprocess.run([str(exe), "dev", "-w", str(PROJECT_DIR / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(args.port)],
                   cwd=PROJECT_DIR, env=env, check=False)


def cmd_validate(args) -> None:
    from definitions import build_defs

    defs = build_defs(args.config)
    import dagster as dg

    dg.Definitions.validate_loadable(defs)
    from am_assets.dedup.bench_sources import file_source
    from am_assets.ingest.logic import header_problems

    cfg = defs.resources["pipeline"].load()
    files = [s for s in cfg.all_sources() if s.kind == "file"] + [f for b in cfg.benchmarks if (f := file_source(b))]
    problems = [p for f in files for p in header_problems(f)]  # mapped CSV columns the header lacks
    if problems:
        raise SystemExit(f"{args.config or 'pipeline.yaml'}: invalid field mapping\n  " + "\n  ".join(problems))
    print(f"{args.config or 'pipeline.yaml'}: valid; {len(list(defs.assets))} assets")
    if args.data:
        from am_assets.ingest.preview import failing, preview_all, render

        summaries = preview_all(cfg, args.rows)
        for summary in summaries:
            print(render(summary), flush=True)
        bad = failing(summaries)
        if bad:
            raise SystemExit(f"{len(bad)} would yield no rows or fail: {', '.join(bad)}")


def cmd_check(args) -> None:
    import json

    from am_assets.verify.api import Judge
    from am_assets.verify.check import check_rows, read_jsonl
    from definitions import build_defs
    from resources.engines import EnginesResource
    from resources.pool import ModelPool

    defs = build_defs(args.config)
    cfg, sandbox = defs.resources["pipeline"].load(), defs.resources["sandbox"]
    path = Path(args.file)
    if not path.is_file():
        raise SystemExit(f"{path}: no such file")
    with ModelPool() as pool:  # a judge may start a vLLM engine; closed on the way out
        judge = Judge(defs.resources["judge"], cfg, EnginesResource.sharing(pool))
        for verdict in check_rows(read_jsonl(path), cfg.verification, sandbox_factory=sandbox.get, judge=judge,
                                  judge_version=judge.version(), log=lambda m: print(m, file=sys.stderr),
                                  models=pool):
            print(json.dumps(verdict, ensure_ascii=False, default=str), flush=True)


def cmd_export(args) -> None:
    from am_assets.mix.api import rows_from_table, write_exports
    from definitions import build_defs

    defs = build_defs(args.config)
    table = defs.resources["lake"].read("training_mix")
    if table.height == 0:
        raise SystemExit("training_mix is empty or not materialized yet: run `am-distill demo` or "
                         "`am-distill materialize -s training_mix` first")
    out = Path(args.out) if args.out else defs.resources["pipeline"].load().mix.export_dir
    for name, path in sorted(write_exports(rows_from_table(table), out).items()):
        print(f"{name}: {path}")


def cmd_deploy(args) -> None:
    from resources.config import load_config
    from resources.deploy import render, write

    config = Path(args.config or os.environ.get("AM_DISTILL_CONFIG") or PROJECT_DIR / "pipeline.yaml").resolve()
    cfg = load_config(config)
    if args.write:
        for path in write(args.profile, cfg, PROJECT_DIR, Path(args.write), config):
            print(f"wrote {path}")
        print(f"set DAGSTER_HOME={Path(args.write).resolve()} and the DAGSTER_PG_* variables (docs/deploy.md)")
        return
    for name, text in render(args.profile, cfg, PROJECT_DIR, config).items():
        print(f"# ---- {name}\n{text}")


def main(argv: list[str] | None = None) -> None:
    _setup_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="am-distill", description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", help="pipeline.yaml (default: $AM_DISTILL_CONFIG or ./pipeline.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="materialize the whole pipeline (missing and stale partitions)")
    d.add_argument("--force", action="store_true", help="re-run fresh partitions too")
    d.set_defaults(fn=cmd_demo)
    parallel_help = "partitions of an asset at once, in N worker processes (default 1; README, Running several at once)"
    d.add_argument("--parallel", type=int, default=1, metavar="N", help=parallel_help)
    m = sub.add_parser("materialize", help="materialize selected assets")
    m.add_argument("-s", "--select", action="append", help="asset name (repeatable); default all")
    m.add_argument("-p", "--partition", help="one partition key, e.g. rg_arith or 's00|t1'")
    m.add_argument("--force", action="store_true", help="re-run fresh partitions too")
    m.set_defaults(fn=cmd_materialize)
    m.add_argument("--parallel", type=int, default=1, metavar="N", help=parallel_help)
    b = sub.add_parser("backfill", help="every partition of one teacher, then everything downstream")
    b.add_argument("--teacher", required=True)
    b.set_defaults(fn=cmd_backfill)
    b.add_argument("--parallel", type=int, default=1, metavar="N", help=parallel_help)
    ln = sub.add_parser("lineage", help="trace a training-mix row, response id or query id")
    ln.add_argument("id")
    ln.set_defaults(fn=cmd_lineage)
    u = sub.add_parser("ui", help="start the Dagster UI")
    u.add_argument("--port", type=int, default=3000)
    u.set_defaults(fn=cmd_ui)
    va = sub.add_parser("validate", help="validate pipeline.yaml and the definitions")
    va.add_argument("--data", action="store_true", help="also read the first rows of every source and benchmark")
    va.add_argument("--rows", type=int, default=200, help="rows per source with --data (default 200)")
    va.set_defaults(fn=cmd_validate)
    ck = sub.add_parser("check", help="verify responses in a JSONL file; one JSON verdict line per row")
    ck.add_argument("file")
    ck.set_defaults(fn=cmd_check)
    ex = sub.add_parser("export", help="write the training mix in the AM 1.4M and AM 40M layouts, chat JSONL, Parquet")
    ex.add_argument("--out", help="folder (default: mix.export_dir)")
    ex.set_defaults(fn=cmd_export)
    dp = sub.add_parser("deploy", help="print or write the production profile's instance + workspace config")
    dp.add_argument("profile", choices=["local", "ray"])
    dp.add_argument("--write", metavar="DIR", help="write dagster.yaml and workspace.yaml there (a DAGSTER_HOME)")
    dp.set_defaults(fn=cmd_deploy)
    args = parser.parse_args(argv)
    from am_distill.cli.runner import MaterializationFailed
    from resources.config import ConfigError

    try:
        args.fn(args)  # each command closes the models it opened (its ModelPool)
    except (ConfigError, MaterializationFailed) as e:
        raise SystemExit(str(e)) from None


if __name__ == "__main__":
    main()
