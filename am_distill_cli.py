"""`am-distill`: run the pipeline from the command line, open the UI, validate the config.

    am-distill demo                 materialize every asset, every partition, in dependency order
    am-distill materialize -s raw_queries -p rg_arith
    am-distill backfill --teacher smol_hot   every partition of one teacher, then what depends on it
    am-distill lineage <id>         trace a training-mix row, response id or query id to its raw row
    am-distill ui                   dagster dev on 127.0.0.1:3000 with the project-local instance
    am-distill validate             check pipeline.yaml and the definitions

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

PROJECT_DIR = Path(__file__).resolve().parent


def _setup_env() -> None:
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_DIR / ".dagster"))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text((PROJECT_DIR / "scripts" / "dagster.yaml").read_text())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def partition_keys(asset_def, instance) -> list[str | None]:
    import dagster as dg

    pdef = asset_def.partitions_def
    if pdef is None:
        return [None]
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return list(pdef.get_partition_keys())


def _matches(asset_def, key: str, only: dict[str, str]) -> bool:
    """Does a partition key belong to the `only` dimensions (e.g. {"teacher": "t1"})?"""
    import dagster as dg

    pdef = asset_def.partitions_def
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        by_dim = pdef.get_partition_key_from_str(key).keys_by_dimension
        return all(by_dim.get(d, v) == v for d, v in only.items())
    name = getattr(pdef, "name", None)  # a single dynamic dimension: source, teacher, ...
    return name not in only or key == only[name]


def stale_status(graph, instance):
    """A function (asset key, partition) -> MISSING | STALE | FRESH, as the UI computes it."""
    # internal API: Dagster exports no public staleness query (reference/dagster.md section 3)
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._core.loader import LoadingContextForTest

    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    return lambda key, pk: resolver.get_status(key, pk).value


def materialize_all(defs, instance, select: list[str] | None = None, partition: str | None = None,
                    only: dict[str, str] | None = None, force: bool = False, log=print) -> dict[str, float]:
    """Materialize the selected assets (default: all), upstream first, each partition in its own run.

    Only missing or stale partitions run unless `force`. `only` restricts partitioned assets to one
    value of a dimension (a per-teacher backfill). Runs are in-process, so engines and models load
    once per command. Returns wall seconds per asset.
    """
    import dagster as dg

    from sensors.registry import record_observations

    cfg = defs.resources["pipeline"].load()
    record_observations(instance, cfg)  # what the sensors would do: partitions + source data versions
    graph = defs.resolve_asset_graph()
    assets = list(defs.assets)
    timings: dict[str, float] = {}
    for key in graph.toposorted_asset_keys:
        name = key.to_user_string()
        node = graph.get(key)
        if not node.is_materializable or (select and name not in select):
            continue
        keys = [partition] if partition else partition_keys(node.assets_def, instance)
        if only:
            keys = [k for k in keys if k is None or _matches(node.assets_def, k, only)]
        if not force:
            status = stale_status(graph, instance)  # fresh resolver: upstream may just have run
            keys = [k for k in keys if status(key, k) != "FRESH"]
            if not keys:
                log(f"[{name}] fresh")
                continue
        start = time.perf_counter()
        for i, pk in enumerate(keys, 1):
            log(f"[{name}] {pk or 'unpartitioned'} ({i}/{len(keys)})")
            result = dg.materialize(assets, selection=[key], partition_key=pk, instance=instance,
                                    resources=defs.resources, raise_on_error=False)
            if not result.success:
                raise SystemExit(f"{name} {pk or ''} failed; see the run {result.run_id} in the UI (am-distill ui)")
        timings[name] = time.perf_counter() - start
    return timings


def cmd_demo(args) -> None:
    import dagster as dg

    from definitions import build_defs

    defs = build_defs(args.config)
    start = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        timings = materialize_all(defs, instance, force=args.force)
    cfg = defs.resources["pipeline"].load()
    print(f"\nDone in {time.perf_counter() - start:.0f} s. Wall time per asset:")
    for name, sec in timings.items():
        print(f"  {name:<24} {sec:7.1f} s")
    print(f"\nLake (Delta tables): {defs.resources['lake'].root}")
    print(f"Dagster instance:    {os.environ['DAGSTER_HOME']}")
    print(f"Exports:             {cfg.mix.export_dir}")
    print(f"Models:              {cfg.training.models_dir}")
    print("Open the UI:         make ui   (then http://127.0.0.1:3000)")


def cmd_materialize(args) -> None:
    import dagster as dg

    from definitions import build_defs

    defs = build_defs(args.config)
    with dg.DagsterInstance.get() as instance:
        materialize_all(defs, instance, select=args.select, partition=args.partition, force=args.force)


def cmd_backfill(args) -> None:
    import dagster as dg

    from definitions import build_defs

    defs = build_defs(args.config)
    cfg = defs.resources["pipeline"].load()
    cfg.teacher(args.teacher)  # fails clearly on an unknown name
    selection = dg.AssetSelection.assets("teacher_responses").downstream().resolve(defs.resolve_asset_graph())
    with dg.DagsterInstance.get() as instance:
        timings = materialize_all(defs, instance, select=[k.to_user_string() for k in selection],
                                  only={"teacher": args.teacher})
    for name, sec in timings.items():
        print(f"  {name:<24} {sec:7.1f} s")


def cmd_lineage(args) -> None:
    from am_assets.lineage import render, trace
    from definitions import build_defs

    lake = build_defs(args.config).resources["lake"]
    try:
        print(render(trace(lake, args.id)))
    except KeyError as e:
        raise SystemExit(str(e.args[0])) from None


def cmd_ui(args) -> None:
    exe = Path(sys.executable).parent / "dagster"
    env = dict(os.environ, AM_DISTILL_CONFIG=str(Path(args.config or PROJECT_DIR / "pipeline.yaml").resolve()))
    subprocess.run([str(exe), "dev", "-w", str(PROJECT_DIR / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(args.port)],
                   cwd=PROJECT_DIR, env=env, check=False)


def cmd_validate(args) -> None:
    from definitions import build_defs

    defs = build_defs(args.config)
    import dagster as dg

    dg.Definitions.validate_loadable(defs)
    print(f"{args.config or 'pipeline.yaml'}: valid; {len(list(defs.assets))} assets")


def main(argv: list[str] | None = None) -> None:
    _setup_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="am-distill", description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", help="pipeline.yaml (default: $AM_DISTILL_CONFIG or ./pipeline.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="materialize the whole pipeline (missing and stale partitions)")
    d.add_argument("--force", action="store_true", help="re-run fresh partitions too")
    d.set_defaults(fn=cmd_demo)
    m = sub.add_parser("materialize", help="materialize selected assets")
    m.add_argument("-s", "--select", action="append", help="asset name (repeatable); default all")
    m.add_argument("-p", "--partition", help="one partition key, e.g. rg_arith or 's00|t1'")
    m.add_argument("--force", action="store_true", help="re-run fresh partitions too")
    m.set_defaults(fn=cmd_materialize)
    b = sub.add_parser("backfill", help="every partition of one teacher, then everything downstream")
    b.add_argument("--teacher", required=True)
    b.set_defaults(fn=cmd_backfill)
    ln = sub.add_parser("lineage", help="trace a training-mix row, response id or query id")
    ln.add_argument("id")
    ln.set_defaults(fn=cmd_lineage)
    u = sub.add_parser("ui", help="start the Dagster UI")
    u.add_argument("--port", type=int, default=3000)
    u.set_defaults(fn=cmd_ui)
    sub.add_parser("validate", help="validate pipeline.yaml and the definitions").set_defaults(fn=cmd_validate)
    args = parser.parse_args(argv)
    from resources.config import ConfigError

    try:
        args.fn(args)
    except ConfigError as e:
        raise SystemExit(str(e)) from None


if __name__ == "__main__":
    main()
