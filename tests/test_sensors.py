"""Registry sensors: config entries and landed files become partitions; changed inputs are observed."""

import json

import dagster as dg

from sensors.registry import record_observations, source_registry, teacher_registry


def _tick(sensor, defs, instance, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor,
                                  resources={"pipeline": defs.resources["pipeline"]})
    return sensor(ctx)


def test_source_sensor_adds_partitions_and_observes_changed_files(project, instance, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    f = tmp_path / "a.jsonl"
    f.write_text(json.dumps({"question": "What is 2+2?"}) + "\n")
    project.write({"sources": [{"name": "a", "kind": "file", "path": str(f)}],
                   "landing": {"dir": str(landing)},
                   "benchmarks": [{"name": "he", "kind": "humaneval"}]})
    defs = project.defs()

    r1 = _tick(source_registry, defs, instance)
    added = {req.partitions_def_name: list(req.partition_keys) for req in r1.dynamic_partitions_requests}
    assert added == {"source": ["a"], "benchmark": ["he"]}
    assert [(e.asset_key.to_user_string(), e.partition) for e in r1.asset_events] == [
        ("source_files", "a"), ("benchmark_files", "he")]

    # the daemon applies requests; in a test we do it
    instance.add_dynamic_partitions("source", ["a"])
    instance.add_dynamic_partitions("benchmark", ["he"])
    r2 = _tick(source_registry, defs, instance, cursor=r1.cursor)
    assert r2.dynamic_partitions_requests == [] and r2.asset_events == []  # nothing changed

    (landing / "new drop.jsonl").write_text(json.dumps({"question": "What is 3+3?"}) + "\n")
    f.write_text(json.dumps({"question": "What is 2+5?"}) + "\n")
    r3 = _tick(source_registry, defs, instance, cursor=r2.cursor)
    assert [list(req.partition_keys) for req in r3.dynamic_partitions_requests] == [["landing_new_drop"]]
    assert sorted(e.partition for e in r3.asset_events) == ["a", "landing_new_drop"]


def test_teacher_sensor_observes_only_the_edited_teacher(project, instance):
    teachers = [{"name": "t1", "kind": "vllm"}, {"name": "t2", "kind": "vllm"}]
    project.write({"teachers": teachers})
    r1 = _tick(teacher_registry, project.defs(), instance)
    assert [list(r.partition_keys) for r in r1.dynamic_partitions_requests] == [["t1", "t2"]]
    instance.add_dynamic_partitions("teacher", ["t1", "t2"])

    teachers[1]["sampling"] = {"temperature": 1.1}
    project.write({"teachers": teachers})
    r2 = _tick(teacher_registry, project.defs(), instance, cursor=r1.cursor)
    assert r2.dynamic_partitions_requests == []
    assert [e.partition for e in r2.asset_events] == ["t2"]


def test_removed_teacher_is_kept_and_warned(project, instance, caplog):
    project.write({"teachers": [{"name": "t1", "kind": "vllm"}]})
    instance.add_dynamic_partitions("teacher", ["t1", "gone"])
    r = _tick(teacher_registry, project.defs(), instance)
    assert r.dynamic_partitions_requests == []
    assert instance.has_dynamic_partition("teacher", "gone")


def test_record_observations_is_idempotent(project, instance):
    project.write({"teachers": [{"name": "t1", "kind": "vllm"}], "sources": [{"name": "he", "kind": "humaneval"}]})
    cfg = project.cfg()
    assert record_observations(instance, cfg) == 5  # source, teacher, three settings (no benchmarks)
    assert record_observations(instance, cfg) == 0


def test_every_observable_source_is_observed_with_its_own_version(project, instance):
    """The sensors' versions equal what each observable asset's observe function returns."""
    from dagster._core.definitions.observe import observe  # not exported in 1.13

    from am_assets.core.partitions import sync_dynamic_partitions
    from am_assets import observed_versions

    project.write({"teachers": [{"name": "t1", "kind": "vllm"}], "sources": [{"name": "he", "kind": "humaneval"}],
                   "benchmarks": [{"name": "heb", "kind": "humaneval", "limit": 2}]})
    defs, cfg = project.defs(), project.cfg()
    sync_dynamic_partitions(instance, cfg)
    expected = observed_versions(cfg)
    observables = [a for a in defs.assets if isinstance(a, dg.SourceAsset) and a.is_observable]
    assert {a.key.to_user_string() for a in observables} == {k for k, _ in expected}
    for asset in observables:
        observe([asset], instance=instance, resources=defs.resources)
        for (name, partition), version in expected.items():
            if name == asset.key.to_user_string():
                rec = instance.get_latest_data_version_record(asset.key, is_source=True, partition_key=partition)
                assert rec.asset_observation.tags["dagster/data_version"] == version, (name, partition)
