"""`EvalConfig`: every setting of an evaluation, checked once at entry (all problems reported together)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sfn.errors import SfnError, SfnErrors, argument
from sfn.eval.benchmarks import Benchmark, get_benchmark, with_columns
from sfn.eval.budget import BUDGET_STYLES, parse_budget_forcing
from sfn.eval.prompts import (
    DEFAULT_PLAIN_TEMPLATE,
    PROMPT_FORMATS,
    PROTOCOL_MARKERS,
    THINKING_STYLES,
    ThinkingMarkers,
)
from sfn.settings import with_overrides

BACKENDS = ("hf", "vllm")
# Settings that change what a sample's output is; a resumed run must match them exactly.
OUTPUT_SETTINGS = (
    "benchmark", "data", "columns", "prompt_format", "instruction", "plain_template", "system_prompt",
    "max_new_tokens", "do_sample", "temperature", "top_p", "seed", "thinking", "budget_forcing",
    "wait_text", "max_thinking_tokens", "max_answer_tokens", "budget_style", "stop",
)
# Not among them: `limit` and `samples`. Each sample's seed depends only on (seed, problem, index),
# so a rerun with more problems or more samples per problem adds to a run, and fewer report a part.


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

    `prompt_format`: "auto" (chat if the tokenizer has a template, else raw), "raw" (alias
    "plain"), "chat", or "r1" (chat template, no system prompt, reply opened with "<think>\n").
    `thinking` is a style name ("r1": <think>...</think>, "s1": <|im_start|>think ...
    <|im_start|>answer) or `ThinkingMarkers`; it is required by `budget_forcing` ("wait:N") and
    `max_thinking_tokens`, except with `budget_style` "s1" or "r1", which bring their protocol's
    markers. `budget_style`: "sfn" (sfn's original forcing), "s1" (simplescaling/s1's harness,
    see sfn.eval.budget), "r1" (s1's rules with R1's <think>...</think>).
    `samples` outputs per problem (sampling with `temperature`/`top_p`, seeded per problem and
    sample from `seed`; `do_sample` None means: sample when `samples` > 1).
    `allow_long_context` lets a prompt plus its generation budget exceed the model's context.
    `instruction` None means the benchmark's own instruction.
    `stop`: strings that end an output where one first appears, cut off before it (lm-evaluation-
    harness's `until`; "\n\nQuestion:" for a few-shot `plain_template`); generation without thinking only.
    `backend_args` are engine settings passed through to the backend (vLLM's `LLM(...)` keyword
    arguments: tensor_parallel_size, max_model_len, gpu_memory_utilization, dtype, revision, ...).
    `out` is a run directory: samples.jsonl (one line per sample, appended as they finish),
    settings.json and summary.json; an existing run there is resumed.
    """

    benchmark: str | Benchmark = "gsm8k"
    data: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    prompt_format: str = "auto"
    instruction: str | None = None
    plain_template: str = DEFAULT_PLAIN_TEMPLATE
    system_prompt: str | None = None
    backend: str = "hf"
    backend_args: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8
    max_new_tokens: int = 512
    stop: tuple[str, ...] = ()
    samples: int = 1
    do_sample: bool | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    thinking: str | ThinkingMarkers | None = None
    budget_forcing: str | None = None
    budget_style: str = "sfn"
    wait_text: str = "Wait"
    max_thinking_tokens: int | None = None
    max_answer_tokens: int = 512
    allow_long_context: bool = False
    out: str | None = None
    device: str | None = None
    allow_pickle: bool = False  # load pickled .bin checkpoints (runs their unpickler)
    grade_levels: bool = True
    progress: bool = True

    def with_overrides(self, overrides: dict[str, Any]) -> EvalConfig:
        return with_overrides(self, overrides, "evaluation")

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
        if self.prompt_format == "r1" and self.system_prompt:
            problems.append(f"{argument('prompt_format', 'r1', flag='--format')} sends no system prompt (DeepSeek-R1's recommendation); "
                            f"drop {argument('system_prompt')} or use the chat format")
        if self.budget_style not in BUDGET_STYLES:
            problems.append(f"{argument('budget_style', self.budget_style)}: choose one of {', '.join(BUDGET_STYLES)}")
        if self.samples < 1:
            problems.append(f"{argument('samples')} must be at least 1, got {self.samples}")
        if self.samples > 1 and self.do_sample is False:
            problems.append(f"samples={self.samples} (--samples) with greedy decoding (do_sample=False, --greedy) gives "
                            f"{self.samples} identical outputs; allow sampling")
        if self.backend not in BACKENDS:
            problems.append(f"{argument('backend', self.backend)}: choose one of {', '.join(BACKENDS)}")
        if self.backend_args and self.backend != "vllm":
            problems.append(f"--backend-arg {', '.join(sorted(self.backend_args))}: engine settings are for --backend vllm")
        for name in ("batch_size", "max_new_tokens", "max_answer_tokens"):
            if getattr(self, name) < 1:
                problems.append(f"{argument(name)} must be at least 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            problems.append(f"{argument('limit')} must be at least 1, got {self.limit}")
        if self.max_thinking_tokens is not None and self.max_thinking_tokens < 1:
            problems.append(f"{argument('max_thinking_tokens')} must be at least 1, got {self.max_thinking_tokens}")
        if self.sampling and not (self.temperature > 0 and 0 < self.top_p <= 1):
            problems.append(f"sampling needs {argument('temperature')} > 0 and 0 < {argument('top_p')} <= 1")
        waits = 0
        try:
            waits = parse_budget_forcing(self.budget_forcing)
        except SfnError as error:
            problems.append(str(error))
        thinking = self.thinking
        protocol = PROTOCOL_MARKERS.get(self.budget_style)
        if protocol is not None and thinking in (None, self.budget_style):
            thinking = protocol  # the protocol's own markers, exactly as its harness uses them
        elif isinstance(thinking, str):
            thinking = THINKING_STYLES.get(thinking)
            if thinking is None:
                problems.append(f"{argument('thinking', self.thinking)}: choose one of {', '.join(THINKING_STYLES)} (or pass ThinkingMarkers)")
        wants_thinking = self.budget_forcing not in (None, "none") or self.max_thinking_tokens is not None
        if thinking is None and self.thinking is None and wants_thinking:
            problems.append(
                f"{argument('budget_forcing')} and {argument('max_thinking_tokens')} need thinking markers: "
                f"add {argument('thinking', 'r1')} or {argument('thinking', 's1')}"
            )
        if isinstance(self.stop, str) or not all(isinstance(marker, str) and marker for marker in self.stop):
            problems.append(f"{argument('stop')} must be a list of non-empty strings, got {self.stop!r}")
        elif self.stop and (thinking is not None or wants_thinking):
            problems.append(f"{argument('stop')} ends plain generation; with thinking markers the protocol's own markers "
                            "end each phase: drop one of them")
        if "{question}" not in self.plain_template:
            problems.append(f"{argument('plain_template')} must contain {{question}}")
        if problems:
            raise SfnErrors(problems, "invalid evaluation settings")
        return ResolvedConfig(self, benchmark, thinking, waits)

    @property
    def sampling(self) -> bool:
        """Whether outputs are sampled: as asked, else whenever several samples per problem are."""
        return self.samples > 1 if self.do_sample is None else self.do_sample

    def output_settings(self) -> dict[str, Any]:
        settings = {name: getattr(self, name) for name in OUTPUT_SETTINGS}
        settings["do_sample"] = self.sampling
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
