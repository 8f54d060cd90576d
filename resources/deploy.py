"""The production profiles: the Dagster instance (`dagster.yaml`) and workspace for `local` and `ray`.

`am-distill deploy local|ray [--write DIR]` prints or writes what this module renders from
pipeline.yaml (docs/deploy.md). Both profiles keep Dagster's storage on PostgreSQL (connection from
the DAGSTER_PG_* environment variables, never a literal secret), queue runs (QueuedRunCoordinator,
through `resources.instance.PoolRunCoordinator`) with these limits:
- one run at a time per partition key (`dagster/partition`, per unique value);
- per teacher `max_runs` (`dagster/partition/teacher`) and per teacher pool (`pools`), so a GPU pool or
  an endpoint shared by several teachers gets a bounded number of runs;
and run monitoring + run retries, so a run whose worker was killed is marked failed and run again.
`local` launches each run as a process on this machine (`CheckedRunLauncher`); `ray` submits each
run as a Ray job (dagster-ray's `RayRunLauncher`) with per-asset resource requests from the config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from resources.config import PipelineConfig
from resources.instance import POOL_TAG, TEACHER_TAG

PROFILES = ("local", "ray")
PG_ENV = {"username": "DAGSTER_PG_USER", "password": "DAGSTER_PG_PASSWORD", "hostname": "DAGSTER_PG_HOST",
          "db_name": "DAGSTER_PG_DB", "port": "DAGSTER_PG_PORT"}
RAY_ADDRESS_ENV = "RAY_ADDRESS"  # the Ray dashboard / job server, e.g. http://head:8265


def tag_limits(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """The run queue's limits: one run per partition, per-teacher and per-pool bounds."""
    limits: list[dict[str, Any]] = [
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    limits += [{"key": TEACHER_TAG, "value": t.name, "limit": t.max_runs} for t in cfg.teachers]
    pools = sorted({p for t in cfg.teachers if (p := t.run_pool())})
    limits += [{"key": POOL_TAG, "value": p, "limit": cfg.pools.get(p, 1)} for p in pools]
    return limits


def ray_requests(cfg: PipelineConfig) -> dict[str, dict[str, Any]]:
    """Ray resources per asset (`asset` or `asset:teacher`), for the `dagster-ray/config` run tag.

    From the config (resources/config.py): a teacher's `ray` (default: a vLLM teacher asks for its
    tensor-parallel GPUs), `ray.verification_outcomes` (default one CPU) and `ray.query_embeddings`
    (default one GPU when the embedder is configured on one). An empty request is left out.
    """
    requests: dict[str, dict[str, Any]] = {}
    if tag := cfg.ray.verification_outcomes.as_tag():
        requests["verification_outcomes"] = tag
    for t in cfg.teachers:
        if tag := t.ray_request():
            requests[f"teacher_responses:{t.name}"] = tag
    if cfg.ray.query_embeddings is not None:
        embedding = cfg.ray.query_embeddings.as_tag()
    else:
        embedding = {"num_gpus": 1} if str(cfg.dedup.embedder.device or "").startswith("cuda") else {}
    if embedding:
        requests["query_embeddings"] = embedding
    return requests


def instance_config(profile: str, cfg: PipelineConfig, max_concurrent_runs: int = 8) -> dict[str, Any]:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: one of {', '.join(PROFILES)}")
    coordinator: dict[str, Any] = {
        "max_concurrent_runs": max_concurrent_runs,
        "dequeue_interval_seconds": 2,
        "dequeue_use_threads": True,  # launches in parallel: a run launch can take seconds
        "tag_concurrency_limits": tag_limits(cfg),
        "teacher_pools": {t.name: p for t in cfg.teachers if (p := t.run_pool())},
    }
    if profile == "ray":
        coordinator["ray_requests"] = ray_requests(cfg)
        # the run's Ray job gets these variables from the daemon's environment (Postgres, the config,
        # where the lake is); unset ones are skipped. Object-store credentials stay on the nodes
        launcher = {"module": "dagster_ray", "class": "RayRunLauncher",
                    "config": {"ray": {"address": {"env": RAY_ADDRESS_ENV},
                                       "env_vars": [*PG_ENV.values(), "AM_DISTILL_CONFIG", "DAGSTER_HOME", "LAKE_ROOT"]}}}
    else:
        launcher = {"module": "resources.instance", "class": "CheckedRunLauncher"}
    return {
        # psycopg2 is what dagster-postgres installs; SQLAlchemy 2.1's plain `postgresql` means psycopg 3
        "storage": {"postgres": {"postgres_db": {**{k: {"env": v} for k, v in PG_ENV.items()},
                                                 "scheme": "postgresql+psycopg2"}}},
        "run_coordinator": {"module": "resources.instance", "class": "PoolRunCoordinator", "config": coordinator},
        "run_launcher": launcher,
        # a killed run worker is found by its launcher's health check, marked failed, then retried
        "run_monitoring": {"enabled": True, "poll_interval_seconds": 5, "start_timeout_seconds": 300,
                           "max_resume_run_attempts": 0},
        "run_retries": {"enabled": True, "max_retries": 2},
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
    }


def workspace_config(project_dir: Path) -> dict[str, Any]:
    return {"load_from": [{"python_file": {"relative_path": str(project_dir / "definitions.py"),
                                           "working_directory": str(project_dir),
                                           "location_name": "am_distill"}}]}


def render(profile: str, cfg: PipelineConfig, project_dir: Path, config_path: Path | None = None) -> dict[str, str]:
    """File name -> text: dagster.yaml and workspace.yaml for the profile."""
    head = (f"# am-distill `{profile}` profile, written by `am-distill deploy {profile}` from "
            f"{config_path or 'pipeline.yaml'}.\n# Postgres from the environment: "
            f"{', '.join(PG_ENV.values())}" + (f"; Ray job server: {RAY_ADDRESS_ENV}" if profile == "ray" else "")
            + ".\n# docs/deploy.md explains each block.\n")
    dump = lambda d: yaml.safe_dump(json.loads(json.dumps(d)), sort_keys=False)  # noqa: E731 (plain types)
    return {"dagster.yaml": head + dump(instance_config(profile, cfg)),
            "workspace.yaml": head + dump(workspace_config(project_dir))}


def write(profile: str, cfg: PipelineConfig, project_dir: Path, out: Path, config_path: Path | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render(profile, cfg, project_dir, config_path).items():
        (out / name).write_text(text)
        written.append(out / name)
    return written
