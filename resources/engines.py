"""Teacher engines: one `chat` call for offline vLLM, any OpenAI-compatible server, or imported responses.

    engine = engines.engine(teacher_cfg)     # `engines`: the EnginesResource; loaded once per step / command
    outs = engine.chat(conversations, sampling)            # list[list[Completion]], one list per conversation

A failure of one conversation (server errors after retries) is a Completion with `error` set and
`finish_reason == "error"`, never an exception for the whole batch. API keys come only from the
environment variable the config names (checked at config load and before use) and never appear in
messages, logs or tables: the server engine scrubs every text it hands back (resources/secrets.py).
"""

from __future__ import annotations

import json
import logging
import random
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Iterator

import dagster as dg
from pydantic import PrivateAttr

from resources.config import OpenAIServerTeacher, SamplingConfig, VllmTeacher, read_api_key
from resources.models import resolve_model
from resources.pool import ModelPool
from resources.secrets import Scrubber

_log = logging.getLogger(__name__)

Conversation = list[dict[str, str]]


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None  # "stop" | "length" | "error" | "imported" | engine-specific
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None  # wall time of the request (server) or of the batch share (offline)
    error: str | None = None
    model: str | None = None  # the producing model when the engine knows it (imports: model_name)


class Engine(ABC):
    kind: str
    model: str

    @abstractmethod
    def chat(self, conversations: list[Conversation], sampling: SamplingConfig) -> list[list[Completion]]:
        """`sampling.n` completions per conversation (imports: up to n), in input order."""

    def chat_stream(self, conversations: list[Conversation], sampling: SamplingConfig, chunk_size: int,
                    flush_s: float = 60.0) -> Iterator[list[tuple[int, list[Completion]]]]:
        """Groups of (conversation index, completions) as they finish: at least every `chunk_size`
        conversations (or `flush_s` seconds), in any order; callers commit each group."""
        for start in range(0, len(conversations), chunk_size):
            outs = self.chat(conversations[start:start + chunk_size], sampling)
            yield list(enumerate(outs, start))


# ---------------------------------------------------------------- vllm (offline, in process)

def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Does this CPU compute bfloat16 natively (x86 avx512_bf16 / amx_bf16, ARM bf16)? Unknown: no."""
    try:
        text = open(cpuinfo).read()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_dtype(dtype: str, on_cpu: bool, cpu_bf16: bool) -> str:
    """The dtype vLLM gets for a teacher's `dtype`. "auto" on a CPU without native bfloat16 is float32:
    vLLM-CPU then emulates bf16, measured 4.5x slower here (SmolLM2-135M, 2 AVX2 cores, 24 seeded
    sequences batched: 19 tok/s in bfloat16, 86 tok/s in float32). Elsewhere "auto" is vLLM's own
    choice (the model's dtype)."""
    if dtype == "auto" and on_cpu:
        return "bfloat16" if cpu_bf16 else "float32"
    return dtype


def vllm_llm(pool: ModelPool, path: str, *, dtype: str = "auto", max_model_len: int = 2048,
             tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9, enforce_eager: bool = True,
             kv_cache_gib: int = 2, seed: int = 0):
    """One `vllm.LLM` per model settings per pool (loading costs seconds to minutes)."""
    key = ("vllm", str(path), dtype, max_model_len, tensor_parallel_size, gpu_memory_utilization, enforce_eager,
           kv_cache_gib, seed)

    def load():
        from vllm import LLM
        from vllm.platforms import current_platform

        extra: dict[str, Any] = {}
        resolved = resolve_dtype(dtype, current_platform.is_cpu(), cpu_has_bf16())
        if current_platform.is_cpu():
            # the KV cache size per engine, as an engine argument: an environment variable
            # (VLLM_CPU_KVCACHE_SPACE) would hold for every later engine of the process; vLLM's CPU default is huge
            extra["kv_cache_memory_bytes"] = int(kv_cache_gib) * 2**30
            # vLLM-CPU crashes ("CPU Generator does not use offset") when a seeded request's prefill is
            # chunked; whole prefills avoid it. The batch token budget must then hold a full prompt.
            extra.update(enable_chunked_prefill=False, max_num_batched_tokens=max(max_model_len, 8192))
        _log.info("loading vLLM model %s (dtype %s: %s, max_model_len=%d)", path, dtype, resolved, max_model_len)
        return LLM(model=str(path), dtype=resolved, max_model_len=max_model_len,
                   tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
                   enforce_eager=enforce_eager, seed=seed, disable_log_stats=True, **extra)

    return pool.get(key, load, close=_shutdown_llm)


def _shutdown_llm(llm, timeout: float = 30) -> None:
    # without it a Dagster step subprocess reports done but waits minutes at exit for the engine core
    llm.llm_engine.engine_core.shutdown(timeout=timeout)


def vllm_sampling_params(sampling: SamplingConfig):
    from vllm import SamplingParams

    return SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                          max_tokens=sampling.max_tokens, seed=sampling.seed)


class VllmEngine(Engine):
    kind = "vllm"

    def __init__(self, cfg: VllmTeacher, pool: ModelPool):
        self.cfg = cfg
        self.pool = pool
        self.path = resolve_model(cfg.model)
        self.model = cfg.model

    @property
    def llm(self):
        c = self.cfg
        return vllm_llm(self.pool, str(self.path), dtype=c.dtype, max_model_len=c.max_model_len,
                        tensor_parallel_size=c.tensor_parallel_size, gpu_memory_utilization=c.gpu_memory_utilization,
                        enforce_eager=c.enforce_eager, kv_cache_gib=c.kv_cache_gib)

    def chat(self, conversations, sampling):
        if not conversations:
            return []
        llm = self.llm
        start = time.perf_counter()
        outs = llm.chat(conversations, vllm_sampling_params(sampling), use_tqdm=False)
        share = (time.perf_counter() - start) / len(conversations)  # batched: no per-request wall time
        return [_vllm_completions(o, share) for o in outs]

    def chat_stream(self, conversations, sampling, chunk_size, flush_s=60.0):
        """All conversations queued at once and the engine stepped here, so the batch stays full while
        finished groups are handed out for commit (one `chat` per chunk would drain it each time)."""
        if not conversations:
            return
        llm = self.llm
        engine = llm.llm_engine
        if engine.has_unfinished_requests():  # a previous caller was interrupted mid-stream
            raise RuntimeError(f"vLLM engine for {self.path} still has unfinished requests")
        start = time.perf_counter()
        ids = llm.enqueue_chat(conversations, vllm_sampling_params(sampling), use_tqdm=False)
        # vLLM returns internal ids ("13-1a2b3c4d": external id + random suffix) but its outputs carry
        # the external id ("13"): index both
        index = {}
        for i, rid in enumerate(ids):
            index[rid] = index[rid.rsplit("-", 1)[0]] = i
        group: list[tuple[int, list[Completion]]] = []
        last = time.perf_counter()
        try:
            while engine.has_unfinished_requests():
                for out in engine.step():
                    if out.finished:
                        group.append((index[out.request_id], _vllm_completions(out, time.perf_counter() - start)))
                if group and (len(group) >= chunk_size or time.perf_counter() - last >= flush_s):
                    yield group
                    group, last = [], time.perf_counter()
            if group:
                yield group
        finally:
            if engine.has_unfinished_requests():  # the consumer stopped early: do not leak work into the next call
                engine.abort_request(list(ids), internal=True)


def _vllm_completions(out, latency: float) -> list[Completion]:
    return [Completion(text=c.text, finish_reason=c.finish_reason, prompt_tokens=len(out.prompt_token_ids or []),
                       completion_tokens=len(c.token_ids), latency_s=latency) for c in out.outputs]


# ---------------------------------------------------------------- openai_server (any compatible endpoint)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIServerEngine(Engine):
    """POST /chat/completions, one request per sample (seed + sample index, like vLLM's parallel
    sampling), at most `concurrency` in flight, retries with exponential backoff + jitter."""

    kind = "openai_server"

    def __init__(self, cfg: OpenAIServerTeacher):
        self.cfg = cfg
        self.model = cfg.model
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"

    def chat(self, conversations, sampling):
        """Every text that leaves this engine passes `self._scrubbed`: completion errors, response texts
        and the message of any exception (raised anew, without the original chained to it)."""
        key = read_api_key(self.cfg, required=True)  # ConfigError naming the variable when unset or unusable
        scrub = Scrubber([key])
        failure = None
        try:
            outs = self._chat(conversations, sampling, key)
        except Exception as e:  # noqa: BLE001 - re-raised below, scrubbed
            failure = f"teacher {self.cfg.name}: {type(e).__name__}: {e}"
        if failure is not None:  # outside the except block: the unscrubbed exception is not its context
            raise EngineError(scrub(failure))
        return [[self._scrubbed(c, scrub) for c in per_conv] for per_conv in outs]

    def _scrubbed(self, c: Completion, scrub: Scrubber) -> Completion:
        if c.error is not None:
            error = scrub(c.error)
            _log.warning("teacher %s: %s", self.cfg.name, error)
            return replace(c, error=error)
        text = scrub(c.text, edges=False)
        if text != c.text:
            _log.warning("teacher %s: a response contained a piece of the API key; masked", self.cfg.name)
        return replace(c, text=text)

    def _chat(self, conversations, sampling, key):
        import httpx

        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        jobs = [(i, j) for i in range(len(conversations)) for j in range(sampling.n)]
        results: dict[tuple[int, int], Completion] = {}
        limits = httpx.Limits(max_connections=self.cfg.concurrency, max_keepalive_connections=self.cfg.concurrency)
        with httpx.Client(timeout=self.cfg.timeout_s, limits=limits, headers=headers) as client:
            def run(job):
                i, j = job
                results[job] = self._one(client, conversations[i], sampling, sampling.seed + j)

            with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
                list(pool.map(run, jobs))
        return [[results[(i, j)] for j in range(sampling.n)] for i in range(len(conversations))]

    def _one(self, client, conversation, sampling, seed) -> Completion:
        import httpx

        body = {"model": self.cfg.model, "messages": conversation, "n": 1, "temperature": sampling.temperature,
                "top_p": sampling.top_p, "max_tokens": sampling.max_tokens, "seed": seed}
        start = time.perf_counter()
        error, retry_after = "no attempt made", None
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                time.sleep(backoff_delay(attempt, retry_after))
                retry_after = None
            try:
                resp = client.post(self.url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                error = f"{type(e).__name__}: {e}"
                continue
            if resp.status_code == 200:
                try:
                    return self._parse(resp.json(), time.perf_counter() - start)
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    return _error(f"unreadable response from {self.url}: {e}", start)
            error = f"HTTP {resp.status_code} from {self.url}: {resp.text[:300]}"
            if resp.status_code not in RETRY_STATUS:
                break
            retry_after = _retry_after(resp.headers.get("retry-after"))
        return _error(f"{error} (after {attempt + 1} attempts)", start)

    def _parse(self, data: dict, latency: float) -> Completion:
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return Completion(text=choice["message"].get("content") or "", finish_reason=choice.get("finish_reason"),
                          prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
                          latency_s=latency, model=data.get("model"))


class EngineError(RuntimeError):
    """A teacher engine failed as a whole; the message is scrubbed of the API key."""


def _error(message: str, start: float) -> Completion:
    return Completion(text="", finish_reason="error", latency_s=time.perf_counter() - start, error=message)


def backoff_delay(attempt: int, retry_after: float | None = None, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter; a server's Retry-After wins when it is longer."""
    delay = random.uniform(0, min(cap, base * 2 ** attempt))
    return max(delay, min(retry_after, cap)) if retry_after else delay


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


# ---------------------------------------------------------------- registry

def engine_key(cfg) -> str:
    """Teachers that differ only in sampling or prompt share one engine (two temperatures, one model load)."""
    return json.dumps(cfg.model_dump(mode="json", exclude={"name", "sampling", "system_prompt", "chunk_size",
                                                          "max_attempts", "max_runs", "pool"}),
                      sort_keys=True, default=str)


class EnginesResource(dg.ConfigurableResource):
    """Owns the step's `ModelPool` (resources/pool.py): teacher engines, and through it the embedder,
    perplexity models and math workers. Opened lazily, closed at step end; the CLI runner hands one
    open pool to all its runs (`EnginesResource.sharing(pool)`), so each model loads once per command."""

    _pool: ModelPool | None = PrivateAttr(default=None)
    _owned: bool = PrivateAttr(default=False)

    @classmethod
    def sharing(cls, pool: ModelPool) -> "EnginesResource":
        """An instance over an open pool its caller closes (the runner; tests). Pass it to Dagster
        wrapped in `dg.ResourceDefinition.hardcoded_resource`, so no step closes the pool."""
        res = cls()
        res._pool = pool
        return res

    def setup_for_execution(self, context) -> None:
        if self._pool is None:
            self._pool, self._owned = ModelPool(), True

    def teardown_after_execution(self, context) -> None:
        if self._owned and self._pool is not None:
            self._pool.close()
            self._pool, self._owned = None, False

    @property
    def pool(self) -> ModelPool:
        if self._pool is None:  # used outside Dagster without `sharing`: the caller closes it (`close()`)
            self._pool, self._owned = ModelPool(), True
        return self._pool

    def engine(self, cfg) -> Engine:
        """The engine of a `vllm` or `openai_server` teacher (imports are distill's: am_assets/distill/imports.py)."""
        kinds = {"vllm": lambda: VllmEngine(cfg, self.pool), "openai_server": lambda: OpenAIServerEngine(cfg)}
        if cfg.kind not in kinds:
            raise ValueError(f"teacher {cfg.name}: kind {cfg.kind!r} has no engine here (imports are read by distill)")
        return self.pool.get(("engine", engine_key(cfg)), kinds[cfg.kind])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
