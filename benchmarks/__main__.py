"""Run every stage benchmark in turn: `.venv/bin/python -m benchmarks [name ...]` (`--list` names them)."""

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path


def benchmark_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    parser.add_argument("--list", action="store_true", help="print the benchmark names and exit")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(benchmark_names()))
    if unknown:
        parser.error(f"no benchmark named {unknown} (known: {benchmark_names()})")
    if args.list:
        print("\n".join(benchmark_names()))
        return
    for name in args.names or benchmark_names():
        module = importlib.import_module(f"benchmarks.{name}")
        if not hasattr(module, "main"):  # a helper module (e.g. the verifier corpus), not a benchmark
            continue
        print(f"== {name}", flush=True)
        sys.argv = [f"benchmarks.{name}"]
        module.main()


if __name__ == "__main__":
    main()
