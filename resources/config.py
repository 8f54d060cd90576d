"""pipeline.yaml, validated with pydantic.

Every section forbids unknown keys, so a typo fails loudly; `load_config` turns pydantic's errors into
one message that names the file and the dotted key. Nothing runs on an invalid config.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from resources.file_digest import hash_file, kept_digest
from resources.secrets import key_problem

CATEGORIES = ("math", "code", "science", "if", "other")
Category = Literal[CATEGORIES]  # one definition: a tuple in Literal[] is its members
_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"  # partition keys: no | [ ] , or spaces


class ConfigError(ValueError):
    """pipeline.yaml is invalid; the message names the file and key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- sources


class FieldMapping(Strict):
    """Where a file's own columns live. Dotted paths reach into nested objects."""

    question: str = "question"
    answer: str | None = None
    # how the reference answer is carried inside `answer`: as is, GSM8K `#### x`, or the last \boxed{}
    answer_format: Literal["plain", "gsm8k", "boxed"] = "plain"
    category: str | None = None
    test_cases: str | list[str] | None = None  # several fields: their case lists add up (public + private)
    entry_point: str | None = None
    instruction_constraints: str | None = None
    id: str | None = None
    # multiple choice (README "Multiple-choice sources"; the reference becomes the correct letter):
    # options in the file's order (one field holding a list, or a list of fields) + answer_letter or
    # answer_index (0-based); or `correct` + `incorrect` fields, shuffled per item with a recorded seed
    options: str | list[str] | None = None
    answer_letter: str | None = None
    answer_index: str | None = None
    correct: str | None = None
    incorrect: list[str] = []
    shuffle_seed: int = 0

    @model_validator(mode="after")
    def _choices_fields(self):
        given = {k for k in ("options", "answer_letter", "answer_index", "correct") if getattr(self, k)}
        if self.incorrect:
            given.add("incorrect")
        if not given:
            return self
        problems = []
        if self.answer:
            problems.append("`answer` and multiple-choice fields exclude each other "
                            "(the reference is the option letter)")
        if "options" in given and "correct" in given:
            problems.append("give either `options` (+ answer_letter/answer_index) or `correct` + `incorrect`, not both")
        elif "options" in given:
            if ("answer_letter" in given) == ("answer_index" in given):
                problems.append("`options` needs exactly one of `answer_letter` or `answer_index`")
            if isinstance(self.options, list) and not 2 <= len(self.options) <= 26:
                problems.append(f"`options` lists {len(self.options)} fields; 2 to 26 are supported")
        elif "correct" in given:
            if not 1 <= len(self.incorrect) <= 25:
                problems.append("`correct` needs `incorrect`: a list of 1 to 25 fields")
            if given & {"answer_letter", "answer_index"}:
                problems.append("`answer_letter`/`answer_index` go with `options`; `correct` names the right option")
        else:
            problems.append(f"{', '.join(sorted(given))} needs `options` (or `correct` + `incorrect`)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def is_choice(self) -> bool:
        return bool(self.options or self.correct)


class SampleSpec(Strict):
    """A seeded share of the rows, chosen by a hash of each question: the same rows stay chosen when
    the file grows or is reordered."""

    fraction: float = Field(gt=0, le=1)
    seed: int = 0


def row_filter_expr(text: str):
    """A Polars expression from its source text (`pl.col("level") == "Level 5"`), over the raw record's
    top-level fields. The text is the user's own config, evaluated with only `pl` in scope."""
    import polars as pl

    expr = eval(text, {"__builtins__": {}, "pl": pl})  # noqa: S307 - the user's config, like a Dagster asset
    if not isinstance(expr, pl.Expr):
        raise ValueError(f"filter {text!r} is not a Polars expression (got {type(expr).__name__})")
    return expr


class _SourceBase(Strict):
    name: str = Field(pattern=_NAME_PATTERN)
    priority: int = 0  # higher wins when dedup picks a cluster representative
    category: Category | None = None  # default category when the rows carry none
    # which rows: `filter` on the raw record (a Polars expression string, or {field: value | [values]}),
    # then `sample`, then the first `limit` rows (docs: README "Source options")
    filter: str | dict[str, str | int | float | bool | None | list[str | int | float | bool | None]] | None = None
    sample: SampleSpec | None = None
    limit: int | None = Field(default=None, gt=0)
    # the file's category names -> ours (e.g. AM 40M "instruction follow" -> if), before the usual aliases
    category_map: dict[str, Category] = {}

    @field_validator("filter")
    @classmethod
    def _filter_parses(cls, v):
        if isinstance(v, str):
            try:
                row_filter_expr(v)
            except Exception as e:  # noqa: BLE001 - any error in the text is a config error
                raise ValueError(f"filter: {e}") from None
        return v


class ReasoningGymSource(_SourceBase):
    kind: Literal["reasoning_gym"]
    datasets: list[str] = Field(min_length=1)
    count: int = Field(default=50, gt=0)  # per dataset
    seed: int = 42


class HumanEvalSource(_SourceBase):
    kind: Literal["humaneval"]


class FileSource(_SourceBase):
    kind: Literal["file"]
    path: Path
    layout: Literal["am_1.4m", "am_40m", "mapped"] = "mapped"
    mapping: FieldMapping = FieldMapping()
    # `path`: a file (optionally .gz/.zst/.bz2/.xz), a folder or glob of files, or a save_to_disk folder
    format: Literal["auto", "jsonl", "json", "parquet", "csv", "tsv", "arrow"] = "auto"
    split: str | None = None  # a saved DatasetDict's split (default: train, or its only split)
    # a .json document that is an object: the dotted key holding the list of rows (e.g. "data")
    records_path: str | None = None


Source = Annotated[Union[ReasoningGymSource, HumanEvalSource, FileSource], Field(discriminator="kind")]


_LANDING_FILES = r"\.(jsonl|ndjson|json|parquet|csv|tsv|arrow)(\.(gz|zst|bz2|xz))?$"


class LandingConfig(Strict):
    """A folder whose files each become a source named after the file (stem, sanitized)."""

    dir: Path
    layout: Literal["am_1.4m", "am_40m", "mapped"] = "mapped"
    mapping: FieldMapping = FieldMapping()
    category: Category | None = None
    priority: int = 0

    def discover(self) -> list[FileSource]:
        try:
            entries = sorted(self.dir.iterdir())
        except OSError:  # missing or unreadable folder: no landed sources (a bad folder stops nothing)
            return []
        found = []
        for path in entries:
            if path.is_file() and not path.name.startswith(".") and re.search(_LANDING_FILES, path.name):
                stem = re.sub(_LANDING_FILES, "", path.name)
                name = "landing_" + re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
                found.append(FileSource(name=name, kind="file", path=path, layout=self.layout,
                                        mapping=self.mapping, category=self.category, priority=self.priority))
        return found


class CleaningConfig(Strict):
    max_chars: int = Field(default=16_000, gt=0)
    max_unicode_ratio: float = Field(default=0.5, ge=0, le=1)  # share of non-ASCII letters; papers give no number
    min_chars: int = Field(default=8, ge=0)
    max_row_bytes: int = Field(default=1_000_000, gt=0)  # bigger input rows are rejected, not truncated


# ---------------------------------------------------------------- dedup and benchmarks


class EmbedderConfig(Strict):
    # sentence_transformers: MiniLM (default), bge-m3, gte, ...; model2vec: a static embedder (CPU-fast),
    # by default distilled offline from the packaged MiniLM (docs/dedup.md has the recall figures)
    kind: Literal["sentence_transformers", "model2vec"] = "sentence_transformers"
    model: str = "all-MiniLM-L6-v2"  # the packaged default, or a local folder (bge-m3, gte, ...)
    batch_size: int = Field(default=64, gt=0)
    device: str = "cpu"


class DedupConfig(Strict):
    embedder: EmbedderConfig = EmbedderConfig()
    semantic: bool = True  # false: exact dedup and exact/n-gram decontamination only, no embeddings
    cosine_threshold: float = Field(default=0.9, gt=0, le=1)
    knn: int = Field(default=10, gt=0)
    exact_index_max: int = Field(default=50_000, gt=0)  # above: approximate index (flat all-vs-all is quadratic)
    approx_index: Literal["ivf", "hnsw"] = "ivf"
    nprobe: int = Field(default=16, gt=0)  # IVF cells searched per query (hnsw: efSearch = 4 * nprobe)
    threads: int = Field(default=0, ge=0)  # faiss OpenMP threads for the kNN (0: every core)
    # MinHash-LSH pre-pass: a text that is a near-exact duplicate (word-bigram Jaccard >= near_exact_jaccard,
    # same numbers) of another text of its source borrows that text's embedding instead of being embedded
    near_exact: bool = True
    near_exact_jaccard: float = Field(default=0.8, gt=0, le=1)
    same_numbers: bool = True  # a semantic duplicate must mention the same numbers (variants of a problem differ)


class DecontaminationConfig(Strict):
    ngram: int = Field(default=13, gt=1)
    ngram_min_share: float = Field(default=0.5, ge=0, le=1)  # share of a query's n-grams found in one item
    cosine_threshold: float = Field(default=0.9, gt=0, le=1)
    max_evidence: int = Field(default=10, gt=0)  # evidence entries kept per row (strongest first)


class BenchmarkConfig(Strict):
    name: str = Field(pattern=_NAME_PATTERN)
    kind: Literal["humaneval", "reasoning_gym", "file"] = "file"
    path: Path | None = None
    layout: Literal["am_1.4m", "am_40m", "mapped", "gpqa_csv", "livecodebench", "mbpp"] = "mapped"
    mapping: FieldMapping = FieldMapping()
    category: Category | None = None
    id_range: tuple[int, int] | None = None  # keep items whose numeric id is in [lo, hi] (mbpp default: 11-510)
    datasets: list[str] = []
    count: int = Field(default=20, gt=0)
    seed: int = 10_000  # held-out reasoning-gym seeds differ from the training sources'
    limit: int | None = Field(default=None, gt=0)
    samples: int = Field(default=4, gt=0)  # k for evaluation (papers: 16 for AIME, 4 otherwise)
    max_tokens: int = Field(default=512, gt=0)

    @model_validator(mode="after")
    def _needs_path(self):
        if self.kind == "file" and self.path is None:
            raise ValueError("benchmark of kind 'file' needs a path")
        return self


# ---------------------------------------------------------------- teachers


AM_SYSTEM_PROMPT = (
    "You are a helpful assistant. To answer the user's question, you first think about the reasoning "
    "process and then provide the user with the answer. The reasoning process and answer are enclosed "
    "within <think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
    "here </think> <answer> answer here </answer>."
)


class SamplingConfig(Strict):
    n: int = Field(default=4, gt=0)
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=512, gt=0)
    seed: int = 0


# fields that change how (or where) a teacher runs, not what it generates: outside the fingerprint
_OPERATIONAL_FIELDS = {"name", "chunk_size", "max_attempts", "concurrency", "max_retries", "timeout_s", "base_url",
                       "api_key_env", "tensor_parallel_size", "gpu_memory_utilization", "enforce_eager", "kv_cache_gib",
                       "pool", "max_runs", "ray"}


class RayRequest(Strict):
    """What one run asks a Ray cluster for (the `dagster-ray/config` run tag; docs/deploy.md).

    Unset fields ask for nothing; `num_gpus: 0` says so explicitly (a vllm-cpu teacher)."""

    num_cpus: float | None = Field(default=None, ge=0)
    num_gpus: float | None = Field(default=None, ge=0)
    memory: int | None = Field(default=None, gt=0)  # bytes
    resources: dict[str, Annotated[float, Field(ge=0)]] = {}  # custom Ray resources, e.g. {"A100": 1}

    def as_tag(self) -> dict[str, float | dict]:
        tag = self.model_dump(exclude_none=True)
        if not self.resources:
            del tag["resources"]
        return tag


class _TeacherBase(Strict):
    name: str = Field(pattern=_NAME_PATTERN)
    sampling: SamplingConfig = SamplingConfig()
    system_prompt: str = AM_SYSTEM_PROMPT
    chunk_size: int = Field(default=64, gt=0)  # prompts per committed chunk (crash resume granularity)
    # generation attempts per response row across runs: a row that failed (status 'error') is retried
    # by later runs until it has this many attempts (its `attempts` column)
    max_attempts: int = Field(default=3, gt=0)
    # production profile (docs/deploy.md): runs of this teacher at once, and the GPU pool / endpoint
    # its runs share with other teachers (bounded by `pools`); default: see `run_pool`
    max_runs: int = Field(default=2, gt=0)
    pool: str | None = None
    # what each teacher_responses run of this teacher asks Ray for (profile `ray`); default: a vllm
    # teacher asks for tensor_parallel_size GPUs, other kinds for nothing. Set it to replace that
    ray: RayRequest | None = None

    def ray_request(self) -> dict | None:
        """The Ray request of this teacher's teacher_responses runs (None: nothing asked)."""
        if self.ray is not None:
            return self.ray.as_tag()
        if getattr(self, "kind", "") == "vllm":
            return {"num_gpus": self.tensor_parallel_size}
        return None

    def run_pool(self) -> str | None:
        """The pool this teacher's runs count against: set, else the endpoint or the local GPUs."""
        if self.pool is not None or getattr(self, "kind", "") == "import":
            return self.pool
        return getattr(self, "base_url", None) or "local-gpu"

    def fingerprint(self) -> str:
        """Hash of everything that changes what this teacher generates (not its name, batching or transport)."""
        spec = self.model_dump(mode="json", exclude=_OPERATIONAL_FIELDS)
        return hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=8).hexdigest()


class VllmTeacher(_TeacherBase):
    kind: Literal["vllm"]
    model: str = "smollm2-135m"  # "smollm2-135m" = the packaged default, or a local HF folder
    # "auto": float32 on a CPU without native bfloat16 (4.5x faster there), else the model's dtype
    dtype: str = "auto"
    max_model_len: int = Field(default=2048, gt=0)
    tensor_parallel_size: int = Field(default=1, gt=0)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    # CUDA graphs / torch.compile: ~2 min of start-up on CPU for little gain on a 135M model
    enforce_eager: bool = True
    kv_cache_gib: int = Field(default=2, gt=0)  # VLLM_CPU_KVCACHE_SPACE (whole GiB) when it is not set (CPU only)

    @model_validator(mode="after")
    def _enough_gpus(self):
        gpus = self.ray.num_gpus if self.ray is not None else None
        # 0 = a CPU engine (vllm-cpu); a fraction shares one GPU (tensor_parallel_size 1 only)
        if gpus and self.tensor_parallel_size > 1 and gpus < self.tensor_parallel_size:
            raise ValueError(f"ray.num_gpus ({gpus:g}) is less than tensor_parallel_size "
                             f"({self.tensor_parallel_size}): vLLM needs one GPU per tensor-parallel rank")
        return self


class OpenAIServerTeacher(_TeacherBase):
    kind: Literal["openai_server"]
    base_url: str
    model: str
    # the NAME of the environment variable; the key never enters config
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    concurrency: int = Field(default=8, gt=0)
    max_retries: int = Field(default=5, ge=0)
    timeout_s: float = Field(default=600, gt=0)

    @model_validator(mode="after")
    def _key_usable(self):
        read_api_key(self, required=False)  # a set but unusable key fails at load, before any request
        return self


def read_api_key(teacher: OpenAIServerTeacher, required: bool) -> str | None:
    """The key from the teacher's `api_key_env`, checked; errors name the variable, never the value."""
    env = teacher.api_key_env
    if not env:
        return None
    value = os.environ.get(env)
    if value is None:
        if required:
            raise ConfigError(f"teacher {teacher.name}: environment variable {env} (api_key_env) is not set")
        return None
    problem = key_problem(value)
    if problem:
        raise ConfigError(f"teacher {teacher.name}: environment variable {env} (api_key_env) {problem}; "
                          f"set it to the bare key")
    return value


class ImportTeacher(_TeacherBase):
    kind: Literal["import"]
    path: Path
    layout: Literal["am_1.4m", "am_40m", "skyt1", "mapped"] = "mapped"
    question_field: str = "question"  # dotted paths; used by the `mapped` layout
    response_field: str = "response"
    model_name: str | None = None  # AM 40M: keep only rows whose `model_name` is this
    model: str = "imported"

    def fingerprint(self) -> str:
        """Settings plus the file's bytes: a new or edited import file is new responses."""
        return hashlib.blake2b(f"{super().fingerprint()}:{_file_hash(self.path)}".encode(), digest_size=8).hexdigest()


def _file_hash(path: Path) -> str:
    """Content hash, kept across commands while the file is unchanged (sensors ask every tick)."""
    try:
        return kept_digest(f"file\n{path}", [path],
                           lambda: hash_file(hashlib.blake2b(digest_size=12), path).hexdigest())
    except OSError:
        return "missing"


Teacher = Annotated[Union[VllmTeacher, OpenAIServerTeacher, ImportTeacher], Field(discriminator="kind")]


# ---------------------------------------------------------------- verification, difficulty, mix


def _default_thresholds() -> dict[str, float]:
    return {"math": 0.99, "code": 0.99, "if": 0.99, "science": 4.99, "other": 0.7}


class VerificationConfig(Strict):
    thresholds: dict[Category, float] = Field(default_factory=_default_thresholds)
    math_timeout_s: float = Field(default=5.0, gt=0)
    math_workers: int = Field(default=2, gt=0)
    math_judge_second_opinion: bool = False
    # what a math answer part without \boxed{} gives: nothing ("none"), or a bare expression / an explicit
    # "the final answer is X" statement in the answer part ("answer_statement"; recorded as details.from)
    answer_fallback: Literal["none", "answer_statement"] = "answer_statement"
    code_max_tests: int = Field(default=10, gt=0)
    code_timeout_s: float = Field(default=5.0, gt=0)
    # fraction: passed / tests run (DeepDistill); all_or_nothing: 1 only when all pass (AM-Thinking RL)
    code_score_mode: Literal["fraction", "all_or_nothing"] = "fraction"
    sandbox: Literal["docker", "local"] = "docker"
    sandbox_image: str = "am-distill-sandbox:bookworm"
    judge_teacher: str | None = None  # a teacher name used as judge; default: the first vllm teacher
    repeat_ngram: int = Field(default=20, gt=0)
    repeat_max_count: int = Field(default=20, gt=0)
    # perplexity of query + answer under this model ("smollm2-135m" or a local HF folder); None = not computed
    perplexity_model: str | None = None
    perplexity_max_tokens: int = Field(default=1024, gt=0)
    # health check: a verifier whose unparseable + verifier_error + timeout share is above this fails
    max_failure_share: float = Field(default=0.05, ge=0, le=1)
    audit_sample: int = Field(default=50, gt=0)  # verifier_audit: verdicts re-checked per (source, category, verifier)
    audit_seed: int = 0


class DifficultyConfig(Strict):
    reference_teacher: str | None = None  # default: the last teacher listed (the strongest, by convention)
    weak_teacher: str | None = None  # default: the first teacher listed (teachers are listed weak -> strong)
    cv_ddof: int = Field(default=1, ge=0)  # the papers' worked examples use the sample std (ddof=1)
    easy_pass_rate: float = Field(default=0.5, gt=0, le=1)  # weak teacher's pass rate at or above: easy
    # statuses that are a verdict on the response; others (timeout, verifier_error, no_reference) are not
    scored_statuses: list[str] = ["ok", "truncated", "unparseable"]

    def config_hash(self, thresholds: dict) -> str:
        spec = {"difficulty": self.model_dump(mode="json"), "thresholds": thresholds}
        return hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=8).hexdigest()


class MixConfig(Strict):
    cv_threshold: dict[Category, float] = Field(default_factory=lambda: {c: 0.05 for c in CATEGORIES})
    other_keep_prob: float = Field(default=0.5, ge=0, le=1)
    stage2: bool = False
    stage2_quota: dict[Category, int] = Field(default_factory=dict)
    quota: dict[Category, int] = Field(default_factory=dict)
    token_budget: int | None = Field(default=None, gt=0)
    exclude_flags: list[Literal["truncated", "missing_think", "missing_answer", "repetitive", "high_perplexity"]] = [
        "truncated", "missing_think", "missing_answer", "repetitive"]
    max_perplexity: float = Field(default=20.0, gt=0)  # flag high_perplexity above this (DeepDistill: 20)
    # whose passing responses enter the mix: the reference teacher's (papers) or every teacher's
    response_teachers: Literal["reference", "all"] = "reference"
    seed: int = 0
    export_dir: Path = Path("exports")

    def config_hash(self) -> str:
        """Hash of every selection setting; part of training_mix's data version (not of any upstream)."""
        spec = self.model_dump(mode="json", exclude={"export_dir"})
        return hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=8).hexdigest()


class TrainingConfig(Strict):
    base_model: str = "smollm2-135m"  # the packaged default, or a local HF folder
    learning_rate: float = Field(default=8e-5, gt=0)  # DeepDistill: 8e-5 beats 8e-6 for long reasoning SFT
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=20, ge=-1)  # -1: run the epochs; the CPU demo is capped
    global_batch: int = Field(default=4, gt=0)  # = per_device_batch x grad accumulation x processes
    per_device_batch: int = Field(default=2, gt=0)
    max_seq_length: int = Field(default=1024, gt=0)  # longer samples are dropped, not truncated (P3)
    packing: bool = False
    warmup_fraction: float = Field(default=0.05, ge=0, lt=1)  # linear warmup, then cosine decay to 0
    assistant_only_loss: bool = True  # loss on the final assistant turn only (P3/P4)
    gradient_checkpointing: bool = False  # saves memory on GPU; slows the tiny CPU run
    bf16: bool = False  # CPU default fp32; set true on GPUs
    seed: int = 0
    models_dir: Path = Path("models")
    # how the out-of-process trainer starts (Dagster Pipes): `python` = one process; `accelerate` =
    # `accelerate launch --num_processes N` (multi-GPU; accelerate_config for DeepSpeed/FSDP)
    launcher: Literal["python", "accelerate"] = "python"
    num_processes: int = Field(default=1, gt=0)
    accelerate_config: Path | None = None

    def config_hash(self) -> str:
        """Hash of what changes the trained weights (not where they go or how processes start)."""
        spec = self.model_dump(mode="json", exclude={"models_dir", "launcher", "accelerate_config"})
        return hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=6).hexdigest()


class EvaluationConfig(Strict):
    temperature: float = Field(default=0.6, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    seed: int = 0
    extra_models: list[str] = []  # local model folders to evaluate beside base and trained
    # the trained model learns the AM format (system prompt + <think>/<answer>); base and trained are
    # asked the same way so the comparison is fair
    system_prompt: str | None = AM_SYSTEM_PROMPT
    math_suffix: str = " Let's think step by step and output the final answer within \\boxed{}."  # P3
    # multiple-choice items (any category): the choice verifier reads a letter, \boxed{} or not
    choice_suffix: str = " Answer with the letter of the correct option within \\boxed{}."
    max_model_len: int = Field(default=2048, gt=0)


# ---------------------------------------------------------------- the file


class RayDefaults(Strict):
    """Ray requests of the other heavy assets' runs (teachers carry their own `ray`)."""

    verification_outcomes: RayRequest = RayRequest(num_cpus=1)  # the sandbox / math workers
    # None: one GPU when dedup.embedder.device is cuda*, else nothing
    query_embeddings: RayRequest | None = None


class PipelineConfig(Strict):
    lake_root: str = "lake"
    storage_options: dict[str, str] = {}
    shards: int = Field(default=8, gt=0, le=64)
    landing: LandingConfig | None = None  # new files dropped here become sources (sensor)
    sources: list[Source] = []
    cleaning: CleaningConfig = CleaningConfig()
    dedup: DedupConfig = DedupConfig()
    decontamination: DecontaminationConfig = DecontaminationConfig()
    benchmarks: list[BenchmarkConfig] = []
    teachers: list[Teacher] = []
    pools: dict[str, int] = {}  # runs at once per teacher pool (production profile); 1 when not listed
    ray: RayDefaults = RayDefaults()  # Ray resource requests (profile `ray`, docs/deploy.md)
    verification: VerificationConfig = VerificationConfig()
    difficulty: DifficultyConfig = DifficultyConfig()
    mix: MixConfig = MixConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @field_validator("sources", "teachers", "benchmarks")
    @classmethod
    def _unique_names(cls, items):
        names = [i.name for i in items]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate names: {', '.join(dupes)}")
        return items

    def all_sources(self) -> list:
        """Configured sources plus the files currently in the landing folder."""
        configured = {s.name for s in self.sources}
        landed = self.landing.discover() if self.landing else []
        return [*self.sources, *(s for s in landed if s.name not in configured)]

    def source(self, name: str):
        return _by_name(self.all_sources(), name, "source")

    def teacher(self, name: str):
        return _by_name(self.teachers, name, "teacher")

    def benchmark(self, name: str):
        return _by_name(self.benchmarks, name, "benchmark")

    def shard_keys(self) -> list[str]:
        return [shard_key(i) for i in range(self.shards)]


def shard_key(i: int) -> str:
    return f"s{i:02d}"


def _by_name(items, name, what):
    for item in items:
        if item.name == name:
            return item
    raise KeyError(f"no {what} named {name!r} in pipeline.yaml (known: {[i.name for i in items]})")


def _absolute(p: Path) -> Path:
    try:
        return p.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        return Path(os.path.abspath(p))


# model names that are not paths: the packaged defaults (resources/models.py, resources/embedder.py)
PACKAGED_MODELS = ("smollm2-135m", "all-MiniLM-L6-v2", "default")


def _model_path(value: str | None, base: Path) -> str | None:
    if value is None or value in PACKAGED_MODELS:
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else _absolute(base / p))


def _resolve_paths(cfg: PipelineConfig, base: Path, config_path: Path) -> PipelineConfig:
    """Relative paths in the file are relative to the file, not to the working directory."""
    missing = []
    for section in ("sources", "teachers", "benchmarks"):
        for i, item in enumerate(getattr(cfg, section)):
            p = getattr(item, "path", None)
            if p is None:
                continue
            if not p.is_absolute():
                item.path = _absolute(base / p)
            # a source file that is missing or unreadable fails its own partition when it is read, not
            # every command (config loading never opens source files)
            if section != "sources" and not item.path.exists():
                missing.append(f"{section}.{i}.path: no such file: {item.path}")
    if missing:
        raise ConfigError(f"{config_path}: invalid configuration\n  " + "\n  ".join(missing))
    # models named by path, of every kind, are relative to the file too; packaged defaults stay names
    for t in cfg.teachers:
        if t.kind == "vllm":
            t.model = _model_path(t.model, base)
    cfg.training.base_model = _model_path(cfg.training.base_model, base)
    cfg.verification.perplexity_model = _model_path(cfg.verification.perplexity_model, base)
    cfg.evaluation.extra_models = [_model_path(m, base) for m in cfg.evaluation.extra_models]
    cfg.dedup.embedder.model = _model_path(cfg.dedup.embedder.model, base)
    if cfg.landing is not None and not cfg.landing.dir.is_absolute():
        cfg.landing.dir = (base / cfg.landing.dir).resolve()
    for section, attr in ((cfg.mix, "export_dir"), (cfg.training, "models_dir")):
        p = getattr(section, attr)
        if not p.is_absolute():
            setattr(section, attr, (base / p).resolve())
    if "://" not in cfg.lake_root and not Path(cfg.lake_root).is_absolute():
        cfg.lake_root = str((base / cfg.lake_root).resolve())
    return cfg


def _describe(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    return f"{loc or '<top>'}: {err['msg']}"


def parse_config(data: dict, path: Path) -> PipelineConfig:
    try:
        cfg = PipelineConfig.model_validate(data or {})
    except ValidationError as e:
        problems = "\n  ".join(_describe(err) for err in e.errors())
        raise ConfigError(f"{path}: invalid configuration\n  {problems}") from None
    return _resolve_paths(cfg, path.parent.resolve(), path)


def load_config(path: str | os.PathLike | None = None) -> PipelineConfig:
    """Read and validate pipeline.yaml (default: $AM_DISTILL_CONFIG, else ./pipeline.yaml)."""
    path = Path(path or os.environ.get("AM_DISTILL_CONFIG", "pipeline.yaml"))
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return parse_config(data, path)
