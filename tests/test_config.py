import pytest

from resources.config import ConfigError, load_config


def test_valid_config_resolves_relative_paths(project, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "What is 2+2?"}\n')
    project.write({"sources": [{"name": "d", "kind": "file", "path": "d.jsonl"}]})
    cfg = project.cfg()
    assert cfg.sources[0].path == data.resolve()
    assert cfg.shards == 8 and cfg.shard_keys()[0] == "s00"


@pytest.mark.parametrize(
    "config, key, words",
    [
        ({"shardz": 4}, "shardz", "Extra inputs are not permitted"),
        ({"shards": "many"}, "shards", "valid integer"),
        ({"shards": 65}, "shards", "less than or equal to 64"),
        ({"sources": [{"name": "x", "kind": "reasoning_gym", "datasets": ["chain_sum"], "cuont": 3}]},
         "sources.0.reasoning_gym.cuont", "Extra inputs"),
        ({"sources": [{"name": "x", "kind": "ftp"}]}, "sources.0", "kind"),
        ({"sources": [{"name": "bad|name", "kind": "humaneval"}]}, "sources.0.humaneval.name", "pattern"),
        # (a missing *source* file fails only its partition: tests/test_ingest_sources.py)
        ({"benchmarks": [{"name": "b", "path": "nope.jsonl"}]}, "benchmarks.0.path", "no such file"),
        ({"sources": [{"name": "x", "kind": "humaneval"}, {"name": "x", "kind": "humaneval"}]}, "sources", "duplicate names: x"),
        ({"teachers": [{"name": "t", "kind": "vllm", "sampling": {"temperature": -1}}]},
         "teachers.0.vllm.sampling.temperature", "greater than or equal to 0"),
        ({"teachers": [{"name": "t", "kind": "vllm", "ray": {"num_gpus": -1}}]},
         "teachers.0.vllm.ray.num_gpus", "greater than or equal to 0"),
        ({"teachers": [{"name": "t", "kind": "vllm", "ray": {"gpus": 1}}]}, "teachers.0.vllm.ray.gpus", "Extra inputs"),
        ({"teachers": [{"name": "t", "kind": "vllm", "tensor_parallel_size": 2, "ray": {"num_gpus": 1}}]},
         "teachers.0.vllm", "ray.num_gpus (1) is less than tensor_parallel_size (2)"),
        ({"ray": {"verification": {"num_cpus": 2}}}, "ray.verification", "Extra inputs"),
        ({"ray": {"query_embeddings": {"memory": 0}}}, "ray.query_embeddings.memory", "greater than 0"),
        ({"ray": {"verification_outcomes": {"resources": {"sandbox": -1}}}},
         "ray.verification_outcomes.resources.sandbox", "greater than or equal to 0"),
    ],
)
def test_invalid_config_names_file_and_key(project, config, key, words):
    path = project.write(config)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert str(path) in msg and key in msg and words in msg, msg


def test_missing_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(p)
    p.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_teacher_fingerprint_tracks_sampling_not_name(project):
    project.write({"teachers": [
        {"name": "a", "kind": "vllm", "sampling": {"temperature": 0.7}},
        {"name": "b", "kind": "vllm", "sampling": {"temperature": 0.7}},
        {"name": "c", "kind": "vllm", "sampling": {"temperature": 1.0}},
    ]})
    a, b, c = project.cfg().teachers
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_shipped_pipeline_yaml_is_valid():
    from definitions import PROJECT_DIR

    cfg = load_config(PROJECT_DIR / "pipeline.yaml")
    assert cfg.sources, "the demo config names sources"
