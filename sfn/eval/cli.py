"""`sfn eval MODEL ...`: a thin command over `evaluate(...)` (the lead registers `eval_command`)."""

from __future__ import annotations

import json
from dataclasses import replace

import click

from sfn.cli_errors import SfnCommand, report_errors, stop_interrupted
from sfn.errors import SfnError
from sfn.eval.budget import BUDGET_STYLES
from sfn.eval.config import BACKENDS, EvalConfig, parse_backend_args
from sfn.eval.prompts import (
    DEFAULT_PLAIN_TEMPLATE,
    PROMPT_FORMATS,
    THINKING_STYLES,
    ThinkingMarkers,
)
from sfn.settings import parse_columns, unescaped

RESUME = "the samples finished before the interrupt are kept in --out (if given); rerun the same command to resume"


def _thinking(style: str | None, start: str | None, end: str | None, answer_prefix: str | None) -> str | ThinkingMarkers | None:
    if start is None and end is None and answer_prefix is None:
        return style
    base = THINKING_STYLES.get(style or "")
    if base is None and (start is None or end is None):
        raise SfnError("custom thinking markers need both --think-start and --think-end (or a --thinking style to start from)")
    base = base or ThinkingMarkers(start, end)
    return replace(base, **{k: v for k, v in (("start", start), ("end", end), ("answer_prefix", answer_prefix)) if v is not None})


@click.command("eval", cls=SfnCommand)
@click.argument("model")
@click.option("--benchmark", default="gsm8k", show_default=True, help="gsm8k, math500, aime24, aime25, gpqa_diamond, a registered name, or a YAML spec file.")
@click.option("--data", type=click.Path(dir_okay=False), help="Local JSONL/CSV/Parquet file instead of the Hugging Face hub.")
@click.option("--columns", help="Column mapping for --data: question=COL,answer=COL[,distractors=C1|C2|C3].")
@click.option("--limit", type=int, help="Evaluate only the first N samples.")
@click.option("--format", "prompt_format", type=click.Choice(PROMPT_FORMATS), default="auto", show_default=True,
              help="auto: chat if the tokenizer has a chat template, else raw; raw (or plain): the 'generate' interface; "
                   "chat: the tokenizer's chat template; r1: DeepSeek-R1's recommendation (no system prompt, reply opened with <think>).")
@click.option("--instruction", help="Instruction appended to each question (default: the benchmark's).")
@click.option("--plain-template", default=DEFAULT_PLAIN_TEMPLATE, show_default=True, help="Prompt for --format raw, with {question} and {instruction} (\\n is a newline: room for worked examples).")
@click.option("--system-prompt", help="System message for --format chat.")
@click.option("--backend", type=click.Choice(BACKENDS), default="hf", show_default=True)
@click.option("--backend-arg", "backend_args", multiple=True, metavar="KEY=VALUE", help="Engine setting for --backend vllm (repeatable), e.g. tensor_parallel_size=4, max_model_len=4096, dtype=bfloat16.")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--max-new-tokens", type=int, default=512, show_default=True)
@click.option("--stop", multiple=True, help="End an output where this string first appears, cut off before it (repeatable; "
              "\\n is a newline): lm-evaluation-harness's `until`, e.g. --stop '\\n\\nQuestion:' after a few-shot --plain-template.")
@click.option("--samples", type=int, default=1, show_default=True, help="Outputs per problem; pass@k and maj@k are reported for k = 1, 2, 4, ... up to it.")
@click.option("--sample/--greedy", "do_sample", default=None, help="Sample (seeded per problem and sample) or decode greedily; default: sample when --samples > 1.")
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--top-p", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--thinking", type=click.Choice(sorted(THINKING_STYLES)), help="Thinking markers: r1 (<think>...</think>) or s1 (<|im_start|>think ... <|im_start|>answer).")
@click.option("--think-start", help="Custom start-of-thinking marker (overrides the --thinking style's).")
@click.option("--think-end", help="Custom end-of-thinking marker.")
@click.option("--answer-prefix", help="Text appended after thinking ends, asking for the final answer.")
@click.option("--budget-forcing", help="wait:N — suppress the end of thinking N times, appending the wait text.")
@click.option("--budget-style", type=click.Choice(BUDGET_STYLES), default="sfn", show_default=True,
              help="s1: simplescaling/s1's budget forcing exactly (its markers, stop on any <|im_start|>, one-token minimum, "
                   "waits counted, 'Final Answer:' only when the budget runs out); r1: the same with <think>...</think>; sfn: sfn's original.")
@click.option("--wait-text", default="Wait", show_default=True)
@click.option("--max-thinking-tokens", type=int, help="End thinking after this many tokens and ask for the final answer.")
@click.option("--max-answer-tokens", type=int, default=512, show_default=True, help="Token limit of the answer after thinking (--budget-style sfn; s1 and r1 give it --max-new-tokens, as s1 does).")
@click.option("--reference-model", help="Undamaged base model; its log-likelihood measures fluency for the output levels.")
@click.option("--no-levels", is_flag=True, help="Skip grading output levels I-IV.")
@click.option("--allow-long-context", is_flag=True, help="Generate even where prompt plus token budget exceed the model's max_position_embeddings.")
@click.option("--device", help="Device to load the model on (e.g. cuda).")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (samples.jsonl, summary.json); an existing run there resumes.")
@click.option("--allow-pickle", is_flag=True, help="Load pickled .bin/.pt checkpoints (runs their unpickler).")
@report_errors(kept=RESUME)
def eval_command(
    model: str,
    columns: str | None,
    reference_model: str | None,
    no_levels: bool,
    think_start: str | None,
    think_end: str | None,
    answer_prefix: str | None,
    **options,
) -> None:
    """Evaluate MODEL (a directory, .gguf file or hub id) on a benchmark."""
    from sfn.eval.run import evaluate

    from sfn.cli_errors import show_progress

    options["thinking"] = _thinking(options["thinking"], think_start, think_end, answer_prefix)
    options["backend_args"] = parse_backend_args(options["backend_args"])
    options["stop"] = tuple(unescaped(marker) for marker in options["stop"])
    options["plain_template"] = unescaped(options["plain_template"])
    config = EvalConfig(columns=parse_columns(columns, "question=problem,answer=solution"), grade_levels=not no_levels, progress=show_progress(), **options)
    result = evaluate(model, config, reference_model=reference_model)
    summary = result.summary
    for note in summary.get("notes", []):
        click.echo(("warning: " if note.startswith("floor:") else "note: ") + note, err=True)
    click.echo(json.dumps(summary, indent=2))
    if result.out_dir:
        click.echo(f"samples: {result.out_dir / 'samples.jsonl'}")
    if summary.get("interrupted"):
        stop_interrupted(RESUME if result.out_dir else "the summary above covers the samples finished so far (no --out, so nothing was saved)")
