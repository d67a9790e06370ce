"""`EvalConfig`: every setting of an evaluation, checked once at entry (all problems reported together)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from sfn.errors import SfnError, SfnErrors
from sfn.eval.benchmarks import Benchmark, get_benchmark, with_columns
from sfn.eval.budget import parse_budget_forcing
from sfn.eval.prompts import (
    DEFAULT_PLAIN_TEMPLATE,
    PROMPT_FORMATS,
    THINKING_STYLES,
    ThinkingMarkers,
)

BACKENDS = ("hf", "vllm")
# Settings that change what a sample's output is; a resumed run must match them exactly.
OUTPUT_SETTINGS = (
    "benchmark", "data", "columns", "prompt_format", "instruction", "plain_template", "system_prompt",
    "max_new_tokens", "do_sample", "temperature", "top_p", "seed", "thinking", "budget_forcing",
    "wait_text", "max_thinking_tokens", "max_answer_tokens",
)


def parse_backend_args(pairs: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings as engine settings; a value reads as JSON when it can (4, 0.5, true, null,
    [..]), else as text, so `dtype=float32` and `tensor_parallel_size=4` both mean what they say."""
    parsed: dict[str, Any] = {}
    problems = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            problems.append(f"--backend-arg {pair!r}: expected KEY=VALUE, e.g. tensor_parallel_size=4")
            continue
        if key in parsed:
            problems.append(f"--backend-arg {key} is given twice")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    if problems:
        raise SfnErrors(problems, "invalid --backend-arg")
    return parsed


@dataclass
class EvalConfig:
    """How to evaluate: which benchmark, how to prompt, how to generate, where to write.

    `thinking` is a style name ("r1": <think>...</think>, "s1": <|im_start|>think ...
    <|im_start|>answer) or `ThinkingMarkers`; it is required by `budget_forcing` ("wait:N") and
    `max_thinking_tokens`. `instruction` None means the benchmark's own instruction.
    `backend_args` are engine settings passed through to the backend (vLLM's `LLM(...)` keyword
    arguments: tensor_parallel_size, max_model_len, gpu_memory_utilization, dtype, revision, ...).
    `out` is a run directory: samples.jsonl (one line per sample, appended as they finish),
    settings.json and summary.json; an existing run there is resumed.
    """

    benchmark: str | Benchmark = "gsm8k"
    data: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    prompt_format: str = "chat"
    instruction: str | None = None
    plain_template: str = DEFAULT_PLAIN_TEMPLATE
    system_prompt: str | None = None
    backend: str = "hf"
    backend_args: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8
    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    thinking: str | ThinkingMarkers | None = None
    budget_forcing: str | None = None
    wait_text: str = "Wait"
    max_thinking_tokens: int | None = None
    max_answer_tokens: int = 512
    out: str | None = None
    device: str | None = None
    grade_levels: bool = True
    progress: bool = True

    def with_overrides(self, overrides: dict[str, Any]) -> EvalConfig:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise SfnError(f"unknown evaluation setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(self, **overrides)

    def resolved(self) -> ResolvedConfig:
        """Check every setting; raise `SfnErrors` listing all problems, else the parsed settings."""
        problems: list[str] = []
        benchmark = None
        try:
            benchmark = get_benchmark(self.benchmark)
            if self.columns:
                unknown_roles = sorted(set(self.columns) - {"question", "answer", "distractors"})
                if unknown_roles:
                    problems.append(f"--columns: unknown role(s) {unknown_roles}; use question=COL,answer=COL[,distractors=C1|C2|C3]")
                benchmark = with_columns(benchmark, self.columns)
        except SfnError as error:
            problems.append(str(error))
        if self.prompt_format not in PROMPT_FORMATS:
            problems.append(f"--format {self.prompt_format!r}: choose one of {', '.join(PROMPT_FORMATS)}")
        if self.backend not in BACKENDS:
            problems.append(f"--backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.backend_args and self.backend != "vllm":
            problems.append(f"--backend-arg {', '.join(sorted(self.backend_args))}: engine settings are for --backend vllm")
        for name in ("batch_size", "max_new_tokens", "max_answer_tokens"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            problems.append(f"--limit must be at least 1, got {self.limit}")
        if self.max_thinking_tokens is not None and self.max_thinking_tokens < 1:
            problems.append(f"--max-thinking-tokens must be at least 1, got {self.max_thinking_tokens}")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            problems.append("sampling needs temperature > 0 and 0 < top_p <= 1")
        waits = 0
        try:
            waits = parse_budget_forcing(self.budget_forcing)
        except SfnError as error:
            problems.append(str(error))
        thinking = self.thinking
        if isinstance(thinking, str):
            thinking = THINKING_STYLES.get(thinking)
            if thinking is None:
                problems.append(f"--thinking {self.thinking!r}: choose one of {', '.join(THINKING_STYLES)} (or pass ThinkingMarkers)")
        wants_thinking = self.budget_forcing not in (None, "none") or self.max_thinking_tokens is not None
        if self.thinking is None and wants_thinking:
            problems.append(
                "--budget-forcing and --max-thinking-tokens need thinking markers: add --thinking r1 or --thinking s1"
            )
        if "{question}" not in self.plain_template:
            problems.append("--plain-template must contain {question}")
        if problems:
            raise SfnErrors(problems, "invalid evaluation settings")
        return ResolvedConfig(self, benchmark, thinking, waits)

    def output_settings(self) -> dict[str, Any]:
        settings = {name: getattr(self, name) for name in OUTPUT_SETTINGS}
        if isinstance(self.benchmark, Benchmark):
            settings["benchmark"] = self.benchmark.name
        if isinstance(self.thinking, ThinkingMarkers):
            settings["thinking"] = asdict(self.thinking)
        return settings


@dataclass(frozen=True)
class ResolvedConfig:
    config: EvalConfig
    benchmark: Benchmark
    thinking: ThinkingMarkers | None
    waits: int

    @property
    def instruction(self) -> str:
        return self.benchmark.instruction if self.config.instruction is None else self.config.instruction
