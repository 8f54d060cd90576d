"""A snapshot of the asset graph (keys, deps, partitions, code versions, groups) built from a fixed tiny
config: an accidental change to the graph fails here. After a deliberate change, regenerate it:

    .venv/bin/python -m tests.test_asset_graph --write

and review the diff of tests/asset_graph.json with the change.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import dagster as dg
import yaml

SNAPSHOT = Path(__file__).with_name("asset_graph.json")
CONFIG = {"shards": 2, "teachers": [{"name": "t1", "kind": "vllm"}]}


def _partitions(pdef) -> dict | None:
    if pdef is None:
        return None
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        return {"multi": {d.name: _partitions(d.partitions_def) for d in pdef.partitions_defs}}
    if isinstance(pdef, dg.DynamicPartitionsDefinition):
        return {"dynamic": pdef.name}
    if isinstance(pdef, dg.StaticPartitionsDefinition):
        return {"static": pdef.get_partition_keys()}
    return {type(pdef).__name__: None}


def graph_snapshot(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        out[key.to_user_string()] = {
            "kind": "observable" if node.is_observable else "materializable" if node.is_materializable else "external",
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitions": _partitions(node.partitions_def),
            "code_version": node.code_version,
            "group": node.group_name,
            "checks": sorted(c.name for c in node.check_keys),
        }
    return out


def current() -> dict:
    from definitions import build_defs

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        path.write_text(yaml.safe_dump({"lake_root": str(Path(tmp) / "lake"), **CONFIG}))
        return graph_snapshot(build_defs(path))


def test_the_asset_graph_matches_its_snapshot():
    snap = json.loads(SNAPSHOT.read_text())
    now = current()
    changed = sorted(k for k in set(snap) | set(now) if snap.get(k) != now.get(k))
    assert not changed, (f"the asset graph changed for {changed}; if deliberate, regenerate with "
                         "`.venv/bin/python -m tests.test_asset_graph --write` and review the diff")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python -m tests.test_asset_graph --write")
    SNAPSHOT.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
