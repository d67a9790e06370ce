"""`sfn map`: the transplant and destruction maps, a few lines over `sfn.experiments.maps.map`."""

from __future__ import annotations

import click

from sfn.cli_errors import SfnCommand, pickle_option, report_errors, show_progress
from sfn.errors import SfnError


def _floats(text: str) -> list[float]:
    try:
        return [float(word) for word in text.split(",") if word.strip()]
    except ValueError:
        raise SfnError(f"--alphas {text!r}: give comma-separated numbers, e.g. -1,-0.5,0,0.5,1,1.5,2") from None


@click.command("map", cls=SfnCommand)
@click.argument("base")
@click.argument("tuned")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for map.csv, summary.json and the heatmaps.")
@click.option("--modes", default="transplant,zero", show_default=True, help="Comma separated: transplant, zero, reinit, remove.")
@click.option("--kinds", help="Module kinds or groups, comma separated (default: every kind the model has).")
@click.option("--window", type=int, default=1, show_default=True, help="Layers per window.")
@click.option("--windows", help="Explicit layer windows instead, e.g. 0-4,5-9,10-14.")
@click.option("--probe", "probes", multiple=True, help="math, conversation or a JSONL of {prompt, text} (repeatable; default both built-ins).")
@click.option("--on", type=click.Choice(["base", "tuned"]), default="base", show_default=True, help="Destroy modules in B or in R.")
@click.option("--alpha-curve", help="Selector blended W_B + a (W_R - W_B) along --alphas, e.g. o.")
@click.option("--alphas", default="-1,-0.5,0,0.5,1,1.5,2", show_default=True)
@click.option("--max-new-tokens", type=int, default=96, show_default=True, help="Length of the built-in probes' generated answers.")
@click.option("--probe-limit", type=int, help="Use only the first N prompts of each probe.")
@click.option("--format", "prompt_format", default="auto", show_default=True, help="Prompt format of the built-in probes (auto, chat, raw).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of reinit (as `sfn destroy`).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16", "auto"]), default="float32", show_default=True,
              help="What the models are loaded and computed in; auto keeps the checkpoint's (half precision is faster and "
              "noisier: a cell's KL is a small difference).")
@click.option("--no-prefix-reuse", is_flag=True, help="Run every cell's pass over all layers (slower; for checking).")
@click.option("--no-plots", is_flag=True, help="Write map.csv and summary.json only.")
@click.option("--accuracy", metavar="BENCH", help="Then evaluate the --top best cells, and B and R, on this benchmark (as sfn eval "
              "--benchmark: organism-math, gsm8k, a registered name or a YAML spec): accuracy.csv and accuracy/CELL/.")
@click.option("--top", type=int, help="Cells per mode --accuracy evaluates (default 3): the highest recovered_share for "
              "transplant; for zero, reinit and remove the highest kl_to_base (kl_to_tuned with --on tuned); averaged over the probes.")
@click.option("--accuracy-data", type=click.Path(dir_okay=False), help="Local JSONL/CSV/Parquet file of the --accuracy benchmark (as sfn eval --data).")
@click.option("--accuracy-limit", type=int, help="Evaluate only the first N samples of the --accuracy benchmark.")
@click.option("--accuracy-max-new-tokens", type=int, help="Generation budget of the --accuracy runs (sfn eval's --max-new-tokens, default 512).")
@click.option("--accuracy-batch-size", type=int, help="Prompts generated together in the --accuracy runs (default 8).")
@pickle_option
@report_errors
def map_command(base: str, tuned: str, out: str, modes: str, probes: tuple[str, ...], alphas: str, no_prefix_reuse: bool,
                no_plots: bool, **options) -> None:
    """Map where TUNED's change lives and what it matters for: every kind x layer window transplanted or destroyed."""
    from sfn.experiments.map_outputs import write_map
    from sfn.experiments.maps import map as make_map
    from sfn.io.guard import guard_output

    guard_output(out, inputs=[base, tuned], replace=False)  # refused before any work
    accuracy_settings = {name: options.pop(f"accuracy_{name}") for name in ("data", "limit", "max_new_tokens", "batch_size")}
    result = make_map(base, tuned, modes=[m.strip() for m in modes.split(",") if m.strip()], probes=list(probes) or ["math", "conversation"],
                      alphas=_floats(alphas), reuse_prefix=not no_prefix_reuse, cache_dir=f"{out}/probes", progress=show_progress(),
                      accuracy_settings={k: v for k, v in accuracy_settings.items() if v is not None}, **options)
    paths = write_map(result, out, inputs=[base, tuned], plots=not no_plots)
    for key, cells in result.summary["top_cells"].items():
        shown = ", ".join(f"{c['kind']}@{c['layers']}" for c in cells[:3])
        click.echo(f"top {key}: {shown}")
    for said in result.summary.get("accuracy", {}).get("agreement", {}).values():
        click.echo(f"accuracy {said['text']}")
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
