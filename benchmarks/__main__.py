"""Run every stage benchmark in turn: `.venv/bin/python -m benchmarks [name ...]`."""

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> None:
    names = sys.argv[1:] or sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                                   if not m.name.startswith("_"))
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        if not hasattr(module, "main"):  # a helper module (e.g. the verifier corpus), not a benchmark
            continue
        print(f"== {name}", flush=True)
        sys.argv = [f"benchmarks.{name}"]
        module.main()


if __name__ == "__main__":
    main()
