"""The layers, checked on the source (AST, no imports run):

    am_distill/cli  ->  sensors  ->  am_assets (stages -> am_assets.core)  ->  resources

- `resources/` is a leaf: it imports only `resources.*` (and third-party packages);
- `am_assets` never imports `sensors` or the CLI; `am_assets.core` imports no stage;
- a stage imports another stage only through its `api` module (am_assets/<stage>/api.py);
- only resources/dagster_internals.py imports `dagster._...`;
- the module-level model caches of old are gone (the models live in a ModelPool per step or command).

`violations(root)` is also run on a small tree with one of each mistake, so the check itself is tested.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import PROJECT_DIR

PRODUCTION = ("am_assets", "am_distill", "resources", "sensors", "definitions.py")
STAGES = ("ingest", "dedup", "distill", "verify", "difficulty", "mix", "train", "evaluate")
INTERNALS_ADAPTER = "resources/dagster_internals.py"
OLD_CACHES = ("_LLMS", "_ENGINES", "_keep_open", "_MODELS", "_PPL_MODELS", "_POOLS", "_ensured")


def _files(root: Path) -> list[Path]:
    out = []
    for top in PRODUCTION:
        path = root / top
        out += [path] if path.is_file() else sorted(path.rglob("*.py")) if path.is_dir() else []
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement, nested ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            # `from am_assets import verify` imports the package `am_assets.verify`
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                    if node.module in ("am_assets", *(f"am_assets.{s}" for s in STAGES))]
    return out


def _stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "am_assets" and parts[1] in STAGES else None


def _rule(rel: str, module: str) -> str | None:
    """Why `rel` (a path under the root) may not import `module`, or None."""
    top = module.split(".")[0]
    if rel.startswith("resources/") and top in ("am_assets", "sensors", "am_distill", "definitions"):
        return "resources/ is a leaf: it imports only resources.*"
    if rel.startswith("am_assets/") and top in ("sensors", "am_distill", "definitions"):
        return "am_assets never imports sensors or the CLI"
    if module.startswith("dagster._") and rel != INTERNALS_ADAPTER:
        return f"Dagster internals only in {INTERNALS_ADAPTER}"
    if rel.startswith("am_assets/core/") and (_stage_of(module) or module == "am_assets"):
        return "am_assets.core sits below every stage"
    here = rel.split("/")[1] if rel.startswith("am_assets/") and rel.count("/") >= 2 else None
    there = _stage_of(module)
    if here in STAGES and there and there != here and module.split(".")[2:3] != ["api"]:
        return f"stage {here} imports stage {there} only through am_assets.{there}.api"
    return None


def violations(root: Path) -> list[str]:
    out = []
    for path in _files(root):
        rel = path.relative_to(root).as_posix()
        for line, module in _imports(path):
            why = _rule(rel, module)
            if why:
                out.append(f"{rel}:{line}: imports {module}: {why}")
    return out


def old_caches(root: Path) -> list[str]:
    pattern = re.compile(r"\b(" + "|".join(OLD_CACHES) + r")\b")
    return [f"{p.relative_to(root)}:{i}: {line.strip()}" for p in _files(root)
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]


def test_the_project_keeps_its_layers():
    assert violations(PROJECT_DIR) == []


def test_the_module_level_model_caches_are_gone():
    assert old_caches(PROJECT_DIR) == []


def test_the_checks_catch_each_kind_of_mistake(tmp_path):
    bad = {
        "resources/x.py": "from am_assets.core.schema import text_hash\n",
        "resources/y.py": "def f():\n    import sensors.registry\n",
        "am_assets/verify/x.py": "from sensors.automation import rows_to_retry\n",
        "am_assets/ingest/x.py": "from am_assets.verify.choice import LETTERS\nfrom am_assets import dedup\n",
        "am_assets/evaluate/x.py": "from am_assets.verify.api import verify_partition\n",  # allowed
        "am_assets/core/x.py": "from am_assets.ingest.logic import source_fingerprint\n",
        "sensors/x.py": "from dagster._core.loader import LoadingContextForTest\n",
        "resources/dagster_internals.py": "from dagster._core.loader import LoadingContextForTest\n",  # allowed
        "am_distill/cli/x.py": "_ENGINES = {}\n",
    }
    for rel, text in bad.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = violations(tmp_path)
    assert [v.split(":")[0] for v in found] == ["am_assets/core/x.py", "am_assets/ingest/x.py",
                                               "am_assets/ingest/x.py", "am_assets/verify/x.py", "resources/x.py",
                                               "resources/y.py", "sensors/x.py"], found
    assert "only through am_assets.verify.api" in found[1] and "only through am_assets.dedup.api" in found[2]
    assert old_caches(tmp_path) == ["am_distill/cli/x.py:1: _ENGINES = {}"]


def test_no_engine_setting_goes_through_the_environment():
    """A per-teacher setting set as an environment variable would hold for every later engine of the
    process (the KV cache size is an engine argument: resources/engines.py)."""
    setter = re.compile(r"environ(\.setdefault\(|\[)\s*[\"']VLLM_")
    assert [f"{p.relative_to(PROJECT_DIR)}:{i}" for p in _files(PROJECT_DIR)
            for i, line in enumerate(p.read_text().splitlines(), 1) if setter.search(line)] == []
