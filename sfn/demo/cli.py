"""`sfn demo`: diagnose a base model and its reasoning fine-tune with all four stethoscopes."""

from __future__ import annotations

from pathlib import Path

import click

from sfn.cli_errors import SfnCommand, report_errors


@click.command("demo", cls=SfnCommand)
@click.option("--out", "-o", default="sfn-demo", show_default=True, type=click.Path(path_type=Path),
              help="Folder for every stage's tables and figures, report.html and report.md.")
@click.option("--base", default=None, help="Base model (directory, .gguf or hub id); default: the built-in organism's B.")
@click.option("--tuned", default=None, help="Its fine-tune; default: the built-in organism's R.")
@click.option("--benchmark", default=None, help="Benchmark for --base/--tuned (default gsm8k); the organism uses organism-math.")
@click.option("--data", default=None, help="Local benchmark file (JSONL/CSV/Parquet) for --benchmark.")
@click.option("--train-data", default=None, help="R's training data (question/reasoning/answer JSONL) for the Freeze stage.")
@click.option("--limit", default=None, type=int, help="Benchmark problems per evaluation (default 48).")
@click.option("--freeze-steps", default=None, type=int, help="Optimizer steps per Freeze run (default 100).")
@click.option("--backend", type=click.Choice(["hf", "vllm"]), default="hf", show_default=True,
              help="The Merge stage's generation; vllm keeps one engine over B and switches each variant's weights in it.")
@click.option("--backend-arg", "backend_args", multiple=True, metavar="KEY=VALUE",
              help="vLLM engine setting for --backend vllm (repeatable), e.g. dtype=float32, tensor_parallel_size=4.")
@report_errors(kept="the stages finished before the interrupt left their files in --out; report.html was not written")
def demo_command(out: Path, base, tuned, benchmark, data, train_data, limit, freeze_steps, backend, backend_args) -> None:
    """Delta, Merge, Map, Destruction and Freeze on one pair, summed up in OUT/report.html and OUT/report.md.

    Without --base/--tuned it runs on the built-in model organism (a few minutes on a laptop CPU).
    """
    from dataclasses import replace

    from sfn.cli_errors import show_progress
    from sfn.demo import DemoSettings, run_demo
    from sfn.report import conclusions

    from sfn.eval.config import parse_backend_args

    overrides = {key: value for key, value in (("eval_limit", limit), ("freeze_steps", freeze_steps)) if value is not None}
    overrides.update(backend=backend, backend_args=parse_backend_args(backend_args))
    result = run_demo(out, base=base, tuned=tuned, benchmark=benchmark, data=data, train_data=train_data,
                      settings=replace(DemoSettings(), **overrides), progress=show_progress(),
                      on_stage=lambda message: click.echo(message, err=True) if show_progress() else None)
    click.echo("")
    for stethoscope, supports in conclusions(out):
        click.echo(f"{stethoscope}: {supports}")
    click.echo(f"\ndone in {result.index['seconds']['total']:.0f} s; the findings with their numbers: "
               f"{result.report['html']} ({result.report['markdown'].name} beside it)")
