"""trained_model through Dagster: real TRL SFT (out of process via Pipes), caching, the registry, vLLM load."""

import json

import polars as pl
import pytest

from am_assets.train.logic import (COMPLETE_MARKER, grad_accumulation, mix_data_version, model_key,
                                   to_sft_records, total_steps, warmup_steps)
from tests.conftest import materialize, shared
from tests.train_data import TINY_TRAINING, gsm8k_mix

pytestmark = pytest.mark.slow


def test_sft_records_mask_all_but_the_final_answer():
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2"}]
    recs = to_sft_records(pl.DataFrame({"messages": [json.dumps(chat)]}), assistant_only_loss=True)
    assert recs == [{"prompt": chat[:-1], "completion": chat[-1:]}]
    assert to_sft_records(pl.DataFrame({"messages": [json.dumps(chat)]}), False) == [{"messages": chat}]
    with pytest.raises(ValueError, match="row 0: field messages does not end with an assistant turn"):
        to_sft_records(pl.DataFrame({"messages": [json.dumps(chat[:-1])]}), True)
    with pytest.raises(ValueError, match="row 0: field messages is not JSON"):
        to_sft_records(pl.DataFrame({"messages": ["{oops"]}), True)


def test_schedule_numbers_and_keys():
    assert grad_accumulation(64, 4, 8) == 2
    with pytest.raises(ValueError, match="global_batch 6"):
        grad_accumulation(6, 4)
    assert total_steps(100, 8, 2, -1) == 26 and total_steps(100, 8, 2, 5) == 5
    assert warmup_steps(200, 0.05) == 10 and warmup_steps(3, 0.05) == 1 and warmup_steps(3, 0) == 0
    assert model_key("/data/models/Qwen2.5 32B/") == "Qwen2.5_32B" and model_key("smollm2-135m") == "smollm2-135m"
    a = pl.DataFrame({"messages": ["x", "y"], "lineage": ["1", "2"]})
    b = pl.DataFrame({"messages": ["y", "x"], "lineage": ["3", "4"]})
    assert mix_data_version(a) == mix_data_version(b)  # order and lineage do not change what is trained


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project with a 4-row GSM8K mix, trained once; the later tests build on it."""
    import dagster as dg

    from tests.conftest import Project

    root = tmp_path_factory.mktemp("train")
    project = Project(root)
    config = {"training": {**TINY_TRAINING, "max_steps": 4, "models_dir": str(root / "models")}}
    project.write(config)
    project.lake().write_partition("training_mix", gsm8k_mix(shared("gsm8k/train.jsonl"), n=4), None)
    with dg.instance_for_test() as instance:
        result = materialize(project.defs(), instance, ["trained_model", "model_registry"])
        yield project, config, instance, result


def _mat(result):
    return result.asset_materializations_for_node("trained_model")[0].metadata


def test_sft_lowers_loss_and_registers(trained):
    project, config, instance, result = trained
    meta = _mat(result)
    assert meta["cached"].value is False
    history = json.loads((project.root / "models" / meta["model_id"].value / COMPLETE_MARKER).read_text())["history"]
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    # 4 rows, batch 2: steps 3-4 revisit the rows of steps 1-2 after two updates
    first, last = sum(h["loss"] for h in history[:2]), sum(h["loss"] for h in history[2:])
    assert last < first, history
    assert "data:image/png;base64" in meta["loss_curve"].value
    registry = project.lake().read("model_registry")
    assert registry.height == 1
    row = registry.row(0, named=True)
    assert row["model_id"] == meta["model_id"].value and row["base"] == "smollm2-135m"
    assert row["final_loss"] == pytest.approx(history[-1]["loss"]) and row["steps"] == 4
    assert json.loads(row["config"])["learning_rate"] == 8e-5 and row["run_id"] == result.run_id
    assert set(instance.get_dynamic_partitions("model")) == {row["model_id"], "smollm2-135m"}


def test_unchanged_mix_and_config_is_cached_and_new_lr_trains_anew(trained):
    project, config, instance, first = trained
    old_id = _mat(first)["model_id"].value
    weights = project.root / "models" / old_id / "model.safetensors"
    mtime = weights.stat().st_mtime
    again = materialize(project.defs(), instance, ["trained_model", "model_registry"])
    assert _mat(again)["cached"].value is True and _mat(again)["model_id"].value == old_id
    assert weights.stat().st_mtime == mtime
    assert project.lake().read("model_registry").height == 1

    project.write({"training": {**config["training"], "learning_rate": 1e-4}})
    new = materialize(project.defs(), instance, ["trained_model", "model_registry"])
    new_id = _mat(new)["model_id"].value
    assert _mat(new)["cached"].value is False and new_id != old_id
    registry = project.lake().read("model_registry").sort("created_at")
    assert sorted(registry["model_id"].to_list()) == sorted([old_id, new_id])
    old_row = registry.filter(pl.col("model_id") == old_id).row(0, named=True)
    assert old_row["run_id"] == first.run_id and json.loads(old_row["config"])["learning_rate"] == 8e-5
    assert weights.exists()


def test_trained_folder_loads_in_vllm_and_generates(trained, monkeypatch):
    project, _, _, result = trained
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    from resources.config import SamplingConfig, VllmTeacher
    from resources.engines import EnginesResource
    from resources.pool import ModelPool

    folder = project.root / "models" / _mat(result)["model_id"].value
    sampling = SamplingConfig(n=1, temperature=0.0, max_tokens=16)
    with ModelPool() as pool:  # closed on the way out: a vLLM engine core left running makes pytest wait at exit
        engine = EnginesResource.sharing(pool).engine(VllmTeacher(
            name=model_key(str(folder)), kind="vllm", model=str(folder), sampling=sampling, max_model_len=512))
        [[out]] = engine.chat([[{"role": "user", "content": "What is 2 + 3?"}]], sampling)
    assert out.text.strip() and out.completion_tokens > 0
