"""`EvalConfig`: every setting of an evaluation, checked once at entry (all problems reported together)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from sfn.errors import SfnError, SfnErrors, argument
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


@dataclass
class EvalConfig:
    """How to evaluate: which benchmark, how to prompt, how to generate, where to write.

    `thinking` is a style name ("r1": <think>...</think>, "s1": <|im_start|>think ...
    <|im_start|>answer) or `ThinkingMarkers`; it is required by `budget_forcing` ("wait:N") and
    `max_thinking_tokens`. `instruction` None means the benchmark's own instruction.
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
    allow_pickle: bool = False  # load pickled .bin checkpoints (runs their unpickler)
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
                    problems.append(f"{argument('columns')}: unknown role(s) {unknown_roles}; the roles are question, answer and distractors")
                benchmark = with_columns(benchmark, self.columns)
        except SfnError as error:
            problems.append(str(error))
        if self.prompt_format not in PROMPT_FORMATS:
            problems.append(f"{argument('prompt_format', self.prompt_format, flag='--format')}: choose one of {', '.join(PROMPT_FORMATS)}")
        if self.backend not in BACKENDS:
            problems.append(f"{argument('backend', self.backend)}: choose one of {', '.join(BACKENDS)}")
        for name in ("batch_size", "max_new_tokens", "max_answer_tokens"):
            if getattr(self, name) < 1:
                problems.append(f"{argument(name)} must be at least 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            problems.append(f"{argument('limit')} must be at least 1, got {self.limit}")
        if self.max_thinking_tokens is not None and self.max_thinking_tokens < 1:
            problems.append(f"{argument('max_thinking_tokens')} must be at least 1, got {self.max_thinking_tokens}")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            problems.append(f"sampling needs {argument('temperature')} > 0 and 0 < {argument('top_p')} <= 1")
        waits = 0
        try:
            waits = parse_budget_forcing(self.budget_forcing)
        except SfnError as error:
            problems.append(str(error))
        thinking = self.thinking
        if isinstance(thinking, str):
            thinking = THINKING_STYLES.get(thinking)
            if thinking is None:
                problems.append(f"{argument('thinking', self.thinking)}: choose one of {', '.join(THINKING_STYLES)} (or pass ThinkingMarkers)")
        wants_thinking = self.budget_forcing not in (None, "none") or self.max_thinking_tokens is not None
        if self.thinking is None and wants_thinking:
            problems.append(
                f"{argument('budget_forcing')} and {argument('max_thinking_tokens')} need thinking markers: "
                f"add {argument('thinking', 'r1')} or {argument('thinking', 's1')}"
            )
        if "{question}" not in self.plain_template:
            problems.append(f"{argument('plain_template')} must contain {{question}}")
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
