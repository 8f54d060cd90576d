"""The loaded models live in one ModelPool owned by the `engines` resource: a step opens it lazily and
closes its models at step end; the CLI runner hands one open pool to all its runs. Real models here:
Math-Verify worker processes (the verify stage's own loader) and the packaged MiniLM embedder."""

from __future__ import annotations

import os

import dagster as dg
import pytest
import yaml

from am_assets.verify.base import VerifyContext
from am_assets.verify.math_verifier import math_pool
from resources import build_resources
from resources.config import VerificationConfig, load_config
from resources.embedder import EmbedderResource
from resources.engines import EnginesResource
from resources.pool import ModelPool

VCFG = VerificationConfig(math_workers=1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _use_models(name: str, deps=()) -> dg.AssetsDefinition:
    @dg.asset(name=name, deps=list(deps))
    def _asset(engines: EnginesResource, embedder: EmbedderResource) -> dg.MaterializeResult:
        workers = math_pool(VerifyContext(VCFG, models=engines.pool))
        [verdict] = workers.verify([("2", "\\boxed{2}")])  # a real Math-Verify call in a worker process
        vectors = embedder.encode(["the same pool"])
        return dg.MaterializeResult(metadata={
            "pool": id(engines.pool), "worker": workers.workers[0].proc.pid, "score": verdict["score"],
            "dim": int(vectors.shape[1]), "keys": sorted(str(k[0]) for k in engines.pool.keys())})

    return _asset


@pytest.fixture
def defs(tmp_path) -> dg.Definitions:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"lake_root": str(tmp_path / "lake"), "shards": 1}))
    resources = build_resources(load_config(path), path)
    return dg.Definitions(assets=[_use_models("first"), _use_models("second", ["first"])], resources=resources)


def _meta(result, name) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(name)[0].metadata.items()}


def test_a_step_closes_the_models_it_opened(defs, instance):
    result = dg.materialize([defs.get_assets_def("first")], instance=instance, resources=defs.resources)
    meta = _meta(result, "first")
    assert meta["score"] == 1.0 and meta["dim"] == 384
    assert meta["keys"] == ["embedder", "math_pool"]  # one pool holds both kinds of model
    assert not _alive(meta["worker"])  # closed at step end


def test_the_runner_hands_one_open_pool_to_all_its_runs(defs, instance):
    from am_distill.cli.runner import materialize_all

    with ModelPool() as pool:
        report = materialize_all(defs, instance, pool=pool, log=lambda *_: None)
        first, second = report.metadata[("first", None)], report.metadata[("second", None)]
        assert report.ran == [("first", None), ("second", None)]
        assert first["pool"] == second["pool"] == id(pool)
        assert first["worker"] == second["worker"]  # loaded once, reused by the second run
        assert _alive(first["worker"])  # still open: the caller closes it
    assert not _alive(first["worker"]) and pool.closed and pool.keys() == []
    with pytest.raises(RuntimeError, match="closed"):
        pool.get("x", lambda: 1)
