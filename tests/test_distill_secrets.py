"""The API key never leaves the engine: a canary key through every failure path we can produce
against real loopback servers, then a grep of the lake, DAGSTER_HOME and the captured logs for any
6-character piece of it. Also: keys are checked at config load (the variable named, never the value)."""

from __future__ import annotations

import logging
import secrets
import string
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest

from resources.config import ConfigError, SamplingConfig
from resources.secrets import MASK, Scrubber, key_problem
from tests.conftest import materialize
from tests.distill_helpers import QUESTIONS, mkey, write_unique_queries
from tests.http_fakes import Fakes, dead_url

ENV = "AM_TEST_TEACHER_KEY"


def _canary() -> str:
    # letters and digits, not hex: a 6-character piece must not turn up by chance in run ids or hashes
    return "sk-" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))


def _pieces(key: str, n: int = 6) -> set[str]:
    return {key[i:i + n] for i in range(len(key) - n + 1)}


def _leaks(text: str, key: str) -> list[str]:
    return sorted(p for p in _pieces(key) if p in text)


def _grep_tree(root: Path, key: str) -> dict[str, list[str]]:
    pieces = [p.encode() for p in _pieces(key)]
    found = {}
    for f in root.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            hits = [p.decode() for p in pieces if p in data]
            if hits:
                found[str(f)] = hits
    return found


@pytest.fixture
def fakes():
    server = Fakes()
    yield server
    server.close()


def _teacher(name, url, **kw):
    return {"name": name, "kind": "openai_server", "base_url": url, "model": "fake", "api_key_env": ENV,
            "max_retries": 1, "timeout_s": 5, "concurrency": 4, **kw}


def test_canary_key_leaks_nowhere(project, fakes, tmp_path, monkeypatch, caplog, capfd):
    key = _canary()
    monkeypatch.setenv(ENV, key)
    caplog.set_level(logging.DEBUG)
    teachers = [
        _teacher("dead", dead_url()),
        _teacher("echo500", fakes.url("echo500")),
        _teacher("echo401", fakes.url("echo401")),
        # samples 0..29 send seeds 0..29: the key cut after 1..29 characters, or split by the 300-char cut
        _teacher("cut", fakes.url("cut"), max_retries=0, sampling={"n": 30, "max_tokens": 8}),
        _teacher("short", fakes.url("short")),
        _teacher("slow", fakes.url("slow"), timeout_s=0.5),
        _teacher("echo200", fakes.url("echo200"), max_retries=0),
        _teacher("badjson", fakes.url("badjson"), max_retries=0),
    ]
    for t in teachers:
        t.setdefault("sampling", {"n": 2, "max_tokens": 8})
    project.write({"shards": 1, "teachers": teachers})
    write_unique_queries(project.lake(), {"s00": QUESTIONS[:2]})
    defs = project.defs()
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        for t in teachers:
            assert materialize(defs, instance, ["teacher_responses"], partition_key=mkey(t["name"], "s00")).success
        # downstream too: verdicts carry the generation error into verification_outcomes
        for t in ("echo500", "cut"):
            materialize(defs, instance, ["verification_outcomes"], partition_key=mkey(t, "s00"),
                        raise_on_error=False)
    df = project.lake().read("teacher_responses")
    by = {t: df.filter(pl.col("teacher") == t) for t in df["teacher"].unique()}
    for name in ("dead", "echo500", "echo401", "cut", "short", "slow", "badjson"):
        assert (by[name]["status"] == "error").all(), name
    assert by["echo500"]["error"].str.contains(MASK, literal=True).all()
    assert by["cut"].height == 60 and by["cut"]["error"].str.contains("HTTP 500").all()
    assert by["slow"]["error"].str.contains("Timeout").all()
    assert by["short"]["error"].str.contains("RemoteProtocolError|incomplete|peer closed").all()
    assert (by["echo200"]["status"] == "ok").all() and by["echo200"]["response"].str.contains(MASK, literal=True).all()

    # every value of every table, the lake's bytes (parquet + Delta log statistics), DAGSTER_HOME, logs
    for table in ("teacher_responses", "verification_outcomes"):
        text = project.lake().read(table).select(
            pl.concat_str(pl.all().cast(pl.String), separator="|", ignore_nulls=True)).to_series()
        assert not _leaks("\n".join(text.to_list()), key), table
    assert _grep_tree(project.root / "lake", key) == {}
    assert _grep_tree(home, key) == {}
    out, err = capfd.readouterr()
    logs = out + err + caplog.text
    assert "teacher echo500" in logs  # the engine's warnings were captured
    assert not _leaks(logs, key)


def test_key_with_control_characters_is_a_config_error(project, monkeypatch, caplog, capfd):
    key = _canary()
    cfg = {"shards": 1, "teachers": [_teacher("t", "http://127.0.0.1:9/v1")]}
    for bad in (key + "\r", key + "\n", " " + key, key[:10] + "\t" + key[10:], key + "\x1b", ""):
        monkeypatch.setenv(ENV, bad)
        project.write(cfg)
        with pytest.raises(ConfigError) as e:
            project.cfg()
        assert ENV in str(e.value) and "api_key_env" in str(e.value)
        assert not _leaks(str(e.value), key) and not _leaks(repr(e.value), key)
    out, err = capfd.readouterr()
    assert not _leaks(out + err + caplog.text, key)


def test_key_changed_after_load_is_refused_before_any_request(project, fakes, monkeypatch):
    from resources.engines import OpenAIServerEngine

    key = _canary()
    monkeypatch.setenv(ENV, key)
    project.write({"shards": 1, "teachers": [_teacher("t", fakes.url("echo500"))]})
    teacher = project.cfg().teachers[0]
    monkeypatch.setenv(ENV, key + "\r")
    with pytest.raises(ConfigError, match=ENV) as e:
        OpenAIServerEngine(teacher).chat([[{"role": "user", "content": "hi"}]], SamplingConfig(n=1))
    assert not _leaks(str(e.value), key) and fakes.requests == []
    monkeypatch.delenv(ENV)
    with pytest.raises(ConfigError, match=f"{ENV} .*is not set"):
        OpenAIServerEngine(teacher).chat([[{"role": "user", "content": "hi"}]], SamplingConfig(n=1))


def test_httpx_illegal_header_error_is_scrubbed(fakes):
    """httpx quotes the whole header in `Illegal header value b'Bearer sk-...\\r'`: the scrubber masks
    the escaped spelling as well."""
    key = _canary() + "\r"
    with pytest.raises(httpx.HTTPError) as e:
        httpx.post(fakes.url("ok") + "/chat/completions", json={}, headers={"Authorization": f"Bearer {key}"})
    raw = f"{type(e.value).__name__}: {e.value}"
    assert _leaks(raw, key)  # the real message does carry the key
    clean = Scrubber([key])(raw)
    assert not _leaks(clean, key) and MASK in clean


def test_whole_engine_failure_is_scrubbed_and_unchained(project, fakes, monkeypatch):
    import traceback

    from resources.engines import EngineError, OpenAIServerEngine

    key = _canary()
    monkeypatch.setenv(ENV, key)
    project.write({"shards": 1, "teachers": [_teacher("t", fakes.url("ok"))]})
    engine = OpenAIServerEngine(project.cfg().teachers[0])

    def boom(*_):
        raise ValueError(f"something quoted the header: Bearer {key[:20]}")

    monkeypatch.setattr(engine, "_chat", boom)
    with pytest.raises(EngineError) as e:
        engine.chat([[{"role": "user", "content": "hi"}]], SamplingConfig(n=1))
    text = "".join(traceback.format_exception(e.value))
    assert e.value.__context__ is None and e.value.__cause__ is None
    assert "ValueError" in text and not _leaks(text, key)


@pytest.mark.parametrize("cut", [4, 5, 6, 7, 12, 20, 42])
def test_scrubber_masks_cut_keys(cut):
    key = _canary()
    scrub = Scrubber([key])
    for text in (f"body: {key[:cut]}", f"{key[-cut:]} end", f"mid {key[10:10 + max(cut, 6)]} mid", key):
        assert not _leaks(scrub(text), key) and MASK in scrub(text), text
    assert scrub("nothing to see") == "nothing to see"
    assert scrub("x 1234 y", edges=True) == "x 1234 y"
    short = "abcd"  # prefixes/suffixes of 4+ characters only with edges=True (error texts)
    assert Scrubber([key])(f"answer {key[-4:]}", edges=False) == f"answer {key[-4:]}"
    assert Scrubber([short])("x abcd y") == f"x {MASK} y"


def test_key_problem_names_no_value():
    assert key_problem("sk-abc123") is None
    for bad in ("sk-abc\r", " sk", "sk\tx", "sk\x7f", "", "sk-é"):
        problem = key_problem(bad)
        assert problem and (not bad.strip() or bad.strip() not in problem)
