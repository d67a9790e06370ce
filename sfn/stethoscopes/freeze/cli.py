"""`sfn freeze`: the command line over `sfn.stethoscopes.freeze.freeze` and `sfn.experiments.freeze_compare.compare`.

Multi-process: `accelerate launch --config_file configs/accelerate/<ddp_cpu|deepspeed_zero3|fsdp>.yaml
-m sfn.stethoscopes.freeze.cli MODEL ...` runs the same command on every process.
"""

from __future__ import annotations

from pathlib import Path

import click

from sfn.cli_errors import SfnCommand, pickle_option, report_errors, show_progress, stop_interrupted
from sfn.eval.prompts import TRAINING_FORMATS
from sfn.settings import parse_columns, unescaped
from sfn.stethoscopes.freeze.presets import PRESETS


def _summary(metrics: dict) -> str:
    steps_per_second = metrics["steps_per_second"]
    speed = f"{steps_per_second:.3f} steps/s, {metrics['tokens_per_second'] or 0:.0f} tokens/s" if steps_per_second else "speed: too few steps"
    lines = [
        f"trained {metrics['trainable_parameters']:,} of {metrics['total_parameters']:,} parameters "
        f"({100 * metrics['trainable_share']:.2f}%, {metrics['trainable_tensors']} tensors; selector {metrics['selector']})",
        f"{metrics['steps']} steps, {speed}, peak memory {metrics['peak_memory_bytes'] / 2**20:.0f} MiB ({metrics['memory_kind']})",
        f"final train loss {metrics['final_train_loss']}, held-out loss {metrics['heldout_loss_before']} -> {metrics['heldout_loss']}",
    ]
    if metrics.get("heldout_score"):
        lines.append(f"held-out score: {metrics['heldout_score']}")
    lines += [f"note: {note}" for note in metrics["notes"]]
    return "\n".join(lines)


def _compare_items(text: str) -> list[str]:
    """'emb+head,all' names two presets; 'o,norm' is one selector (it has a comma of its own)."""
    pieces = [piece.strip() for piece in text.split(",") if piece.strip()]
    return pieces if all(piece in PRESETS for piece in pieces) else [text.strip()]


RESUME = "the last checkpoint in --out holds the model so far; run the same command again to resume"


@click.command("freeze", cls=SfnCommand)
@click.argument("model")
@click.option("--train", "-t", "train", default="emb+head+o", show_default=True,
              help=f"Preset ({', '.join(PRESETS)}) or selector of the modules to train (see `sfn modules -h`).")
@click.option("--compare", "compare_presets", multiple=True,
              help="Run several presets or selectors (repeat it; presets may be comma-separated) on the same data and seed "
                   "instead of --train; writes compare.csv and compare.md.")
@click.option("--data", "-d", required=True, help="JSONL/JSON/CSV/Parquet file (or a hub dataset id) with question/reasoning/answer.")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Run folder (resumed if it holds checkpoints).")
@click.option("--columns", default=None, help="Column mapping, e.g. question=problem,reasoning=trace,answer=solution.")
@click.option("--no-norms", is_flag=True, help="Keep the norms frozen (by default they train with every preset).")
@click.option("--format", "prompt_format", default="auto", show_default=True, type=click.Choice(TRAINING_FORMATS),
              help="auto: chat if the tokenizer has a chat template, else raw (plain is raw's old name).")
@click.option("--instruction", default=None,
              help="Instruction after each question, as `sfn eval` adds it (default: the boxed-answer one).")
@click.option("--response-template", default=None,
              help="What the model learns to write, with {reasoning} and {answer}; \\n is a newline "
                   "(default: '{reasoning}\\n\\nFinal Answer: \\boxed{{{answer}}}').")
@click.option("--max-steps", type=int, default=None, help="Optimizer steps (overrides --epochs).")
@click.option("--epochs", type=float, default=5.0, show_default=True)
@click.option("--seq-len", type=int, default=1024, show_default=True, help="Tokens per example (longer ones are cut).")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Examples per process per micro-batch.")
@click.option("--grad-accum", type=int, default=1, show_default=True, help="Micro-batches per optimizer step.")
@click.option("--lr", type=float, default=1e-5, show_default=True)
@click.option("--weight-decay", type=float, default=1e-4, show_default=True)
@click.option("--warmup-ratio", type=float, default=0.05, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=int, default=None, help="Use only the first N records of the data.")
@click.option("--heldout", type=int, default=32, show_default=True, help="Records kept out of training for the held-out loss.")
@click.option("--save-steps", type=int, default=50, show_default=True, help="Checkpoint every N steps.")
@click.option("--gradient-checkpointing", is_flag=True, help="Recompute activations in the backward pass (less memory).")
@click.option("--plugin", is_flag=True, help="Also write only the trained tensors as OUT/plugin.safetensors.")
@click.option("--eval", "eval_benchmark", default=None, help="Benchmark for a held-out score at the end (e.g. gsm8k).")
@click.option("--eval-data", default=None, help="Local file of the --eval benchmark (e.g. ../shared/data/gsm8k/test.jsonl).")
@click.option("--eval-limit", type=int, default=50, show_default=True)
@click.option("--eval-max-new-tokens", type=int, default=256, show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@pickle_option
@report_errors(kept=RESUME)
def freeze_command(model, train, compare_presets, data, out, columns, no_norms, prompt_format, instruction, response_template,
                   eval_benchmark, no_progress, **settings) -> None:
    """Fine-tune MODEL with only the selected modules trainable (the Freeze stethoscope).

    \b
    sfn freeze MODEL --train emb+head+o --data train.jsonl --out runs/o
    sfn freeze MODEL --compare emb+head,emb+head+o,all --data ../shared/data/gsm8k/train.jsonl --out runs/cmp --max-steps 50
    """
    from sfn.experiments.freeze_compare import compare
    from sfn.stethoscopes.freeze.train import freeze

    settings.update(
        columns=parse_columns(columns, "question=problem,reasoning=trace,answer=solution"), norms=not no_norms, prompt_format=prompt_format, eval_benchmark=eval_benchmark,
        progress=not no_progress and show_progress(),
        **{key: value for key, value in (("instruction", instruction),
                                         ("response_template", unescaped(response_template))) if value is not None},
    )
    presets = [p for text in compare_presets for p in _compare_items(text)]
    if presets:
        from sfn.stethoscopes.freeze.report import format_table

        table, results = compare(model, presets, data, out, **settings)
        click.echo(format_table(table))
        click.echo(f"\nwrote {out / 'compare.csv'}, {out / 'compare.md'}, {out / 'loss.png'}")
        if any(result.interrupted for result in results):
            stop_interrupted(f"the runs above; {RESUME}")
        return
    result = freeze(model, train, data, out, **settings)
    from sfn.stethoscopes.freeze.config import is_main_process

    if result.metrics["processes"] > 1 and not is_main_process():
        return
    click.echo(_summary(result.metrics))
    click.echo(f"wrote {result.out_dir}" + (f" (model: {result.model_dir})" if result.model_dir else ""))
    if result.interrupted:
        stop_interrupted(RESUME)


if __name__ == "__main__":
    freeze_command()  # an SfnCommand: errors and interrupts follow the sfn convention here too
