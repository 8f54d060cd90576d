"""Failed responses are retried: a partition holding `error` rows with attempts left is due for the
runner (`am-distill materialize`) and for the automation sensor, until each row's budget
(`max_attempts`, counted in the `attempts` column) is spent. Against a real loopback server."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from am_distill.cli.runner import materialize_all
from tests.distill_helpers import QUESTIONS, write_unique_queries
from tests.http_fakes import Fakes

KEY = dg.AssetKey("teacher_responses")


@pytest.fixture
def fakes():
    server = Fakes()
    yield server
    server.close()


def _requested(defs, instance) -> list[str]:
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    return sorted(result.get_requested_partitions(KEY))


def test_failed_rows_are_retried_until_the_budget_is_spent(project, instance, fakes):
    teacher = {"name": "flaky", "kind": "openai_server", "base_url": fakes.url("flaky"), "model": "fake",
               "max_retries": 0, "max_attempts": 3, "sampling": {"n": 1, "max_tokens": 8}}
    project.write({"shards": 1, "teachers": [teacher]})
    write_unique_queries(project.lake(), {"s00": QUESTIONS[:3]})
    defs = project.defs()
    # the stage before wrote unique_queries; tell Dagster so that automation sees its input present
    instance.report_runless_asset_event(dg.AssetMaterialization("unique_queries", partition="s00"))

    def run(**kw):
        lines = []
        report = materialize_all(defs, instance, select=["teacher_responses"], log=lines.append, **kw)
        return report, lines

    def rows():
        return project.lake().read("teacher_responses").sort("query_id")

    fakes.fail_next = 4  # all 3 rows fail, then 1 of the 3 again
    report, _ = run()
    assert report.total("teacher_responses", "generated") == 3
    assert rows()["status"].to_list() == ["error"] * 3 and rows()["attempts"].to_list() == [1, 1, 1]
    assert report.total("teacher_responses", "retryable_errors") == 3
    assert _requested(defs, instance) == ["s00|flaky"]  # automation agrees: due

    report, lines = run()  # a plain rerun: only the failed rows are sent again
    assert any("3 failed rows to retry" in line for line in lines)
    assert report.total("teacher_responses", "generated") == 3 and len(fakes.requests) == 6
    df = rows()
    assert sorted(df["status"].to_list()) == ["error", "ok", "ok"] and df.height == 3
    assert sorted(df["attempts"].to_list()) == [2, 2, 2]

    fakes.fail_next = 10  # the last row fails again: its third attempt spends the budget
    report, _ = run()
    assert report.total("teacher_responses", "generated") == 1 and len(fakes.requests) == 7
    df = rows()
    assert df.filter(pl.col("status") == "error")["attempts"].to_list() == [3]
    assert report.total("teacher_responses", "retryable_errors") == 0

    report, lines = run()  # budget spent: fresh for the runner and for automation
    assert report.ran == [] and len(fakes.requests) == 7
    assert _requested(defs, instance) == []

    # a larger budget (an operational setting: the fingerprint and cached rows stay) plus --force
    fakes.fail_next = 0
    teacher["max_attempts"] = 4
    project.write({"shards": 1, "teachers": [teacher]})
    defs = project.defs()
    report, _ = run(force=True)
    assert report.total("teacher_responses", "generated") == 1 and len(fakes.requests) == 8
    assert rows()["status"].to_list() == ["ok"] * 3 and sorted(rows()["attempts"].to_list()) == [2, 2, 4]
    assert run()[0].ran == [] and _requested(defs, instance) == []
