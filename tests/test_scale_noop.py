"""A no-op re-run materializes nothing, and its fast path (runner.NoOpMarker) never hides a change.

A tiny benchmarks.scale project (import teachers: no vLLM) is built up to training_mix through the
runner; then: a no-op (the build's last pass found everything fresh: no per-partition check),
a run launched by hand (new events: the full check runs again), a changed mix setting (only
training_mix runs), and a no-op again. benchmarks.scale measures +1% queries from a new source.
"""

import dagster as dg
import yaml

from am_distill.cli.runner import materialize_all
from benchmarks.scale import upstream_names, write_project
from definitions import build_defs


def test_noop_runs_nothing_and_the_fast_path_sees_every_change(tmp_path):
    sizes = write_project(tmp_path, queries=60, teachers=1, samples=2, shards=1, semantic=False)
    assert sizes["responses"] == 120
    cfg = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    cfg["benchmarks"] = []  # fewer partitions: decontamination is not under test here
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
    defs = build_defs(tmp_path / "pipeline.yaml")
    select = upstream_names(defs)
    lines: list[str] = []
    with dg.instance_for_test() as instance:
        first = materialize_all(defs, instance, select=select, log=lambda *_: None)
        assert ("training_mix", None) in first.ran and len(first.partitions("teacher_responses")) == 1

        # the build's last pass found everything fresh: a re-run needs no per-partition check
        assert materialize_all(defs, instance, select=select, log=lines.append).ran == []
        assert lines == ["nothing changed since the last check found every selected partition fresh"]

        # a run launched by hand (the UI) stores events: the marker no longer holds, the full check runs
        assert dg.materialize(list(defs.assets), selection=["training_mix"], instance=instance,
                              resources=defs.resources).success
        lines.clear()
        assert materialize_all(defs, instance, select=select, log=lines.append).ran == []
        assert not any("nothing changed" in line for line in lines)

        # a changed setting (config): only training_mix is stale, and it runs
        cfg["mix"]["cv_threshold"] = {"math": 0.5}
        (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
        defs = build_defs(tmp_path / "pipeline.yaml")
        assert materialize_all(defs, instance, select=select, log=lambda *_: None).ran == [("training_mix", None)]
        assert materialize_all(defs, instance, select=select, log=lambda *_: None).ran == []
