"""The config as a typed resource: parsed once per step (or handed in parsed by the runner); a shard count
or teacher the definitions do not match fails with a clear message; model paths of every kind are
relative to the config file."""

from __future__ import annotations

import dagster as dg
import pytest
import yaml

from am_distill.cli.runner import failure_text
from resources import sharing
from resources.config import ConfigError, load_config
from resources.pipeline import PipelineConfigResource
from resources.pool import ModelPool


def _write(path, **config):
    path.write_text(yaml.safe_dump({"lake_root": str(path.parent / "lake"), **config}))
    return path


def test_a_shard_count_the_definitions_do_not_know_fails_the_run_clearly(tmp_path, instance):
    path = _write(tmp_path / "pipeline.yaml", shards=2)
    pipeline = PipelineConfigResource(path=str(path), shards=2)

    @dg.asset
    def shards_seen(pipeline: PipelineConfigResource) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"shards": pipeline.load().shards})

    ok = dg.materialize([shards_seen], instance=instance, resources={"pipeline": pipeline})
    assert ok.asset_materializations_for_node("shards_seen")[0].metadata["shards"].value == 2
    _write(path, shards=3)  # edited after the definitions were built with 2
    failed = dg.materialize([shards_seen], instance=instance, resources={"pipeline": pipeline}, raise_on_error=False)
    assert not failed.success
    text = failure_text(failed)  # what `am-distill` prints
    assert text.startswith(f"resources.config.ConfigError: {path}: shards is 3 but the definitions were built with 2")


def test_the_runner_parses_the_config_once_for_all_its_runs(tmp_path):
    path = _write(tmp_path / "pipeline.yaml", shards=1)
    cfg = load_config(path)
    with ModelPool() as pool:
        shared = sharing({"pipeline": PipelineConfigResource(path=str(path), shards=1)}, pool, cfg)
        handed = shared["pipeline"].resource_fn(None)  # a hardcoded resource: the same object every run
        path.unlink()  # nothing reads the file again
        assert handed.load() is cfg
        assert shared["engines"].resource_fn(None).pool is pool
    with pytest.raises(ConfigError, match="shards is 1 but the definitions were built with 4"):
        PipelineConfigResource.parsed(cfg, str(path), shards=4)


def test_a_teacher_partition_missing_from_the_config_names_file_and_teachers(tmp_path):
    path = _write(tmp_path / "pipeline.yaml", teachers=[{"name": "t1", "kind": "vllm"}])
    with pytest.raises(ConfigError, match=r"teacher partition 'gone' is not in the config \(teachers: \['t1'\]\)"):
        PipelineConfigResource(path=str(path)).teacher("gone")


def test_model_paths_of_every_kind_are_relative_to_the_config_file(tmp_path, monkeypatch):
    project = tmp_path / "project"
    models = project / "models"
    for name in ("teacher", "base", "ppl", "extra", "embedder"):
        (models / name).mkdir(parents=True)
    path = _write(project / "pipeline.yaml",
                  teachers=[{"name": "local", "kind": "vllm", "model": "models/teacher"},
                            {"name": "packaged", "kind": "vllm"},
                            {"name": "api", "kind": "openai_server", "model": "gpt-x", "base_url": "http://127.0.0.1:1/v1"}],
                  training={"base_model": "models/base"}, verification={"perplexity_model": "./models/ppl"},
                  evaluation={"extra_models": ["models/extra"]}, dedup={"embedder": {"model": "models/embedder"}})
    monkeypatch.chdir(tmp_path)  # the working directory is not the config's folder
    cfg = load_config(path)
    assert cfg.teacher("local").model == str(models / "teacher")
    assert cfg.teacher("packaged").model == "smollm2-135m"  # a packaged default stays a name
    assert cfg.teacher("api").model == "gpt-x"  # a server's model name is not a path
    assert cfg.training.base_model == str(models / "base")
    assert cfg.verification.perplexity_model == str(models / "ppl")
    assert cfg.evaluation.extra_models == [str(models / "extra")]
    assert cfg.dedup.embedder.model == str(models / "embedder")
