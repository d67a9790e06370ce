"""Command-line front ends of weight surgery: `sfn merge`, `sfn destroy` and `sfn plugin`.

The library (and torch) is imported inside each command, so that help and argument errors stay fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from sfn.cli_errors import SfnCommand, SfnGroup, pickle_option, report_errors, show_progress
from sfn.errors import SfnError
from sfn.stethoscopes.surgery.choices import DEFAULT_SHARD_SIZE, DTYPE_NAMES, METHODS

_shard = click.option("--shard-size", default=DEFAULT_SHARD_SIZE, show_default=True, help="Largest shard file, e.g. 5GB, 500MB.")
_dtype = click.option("--dtype", type=click.Choice(sorted(DTYPE_NAMES)), help="Cast floating tensors (default: keep each dtype).")
_overwrite = click.option("--overwrite", is_flag=True, help="Replace an earlier sfn output there (it holds sfn_provenance.json).")
_overwrite_any = click.option("--overwrite-any", is_flag=True, help="Replace whatever is at the output path, even if sfn did not write it.")


def _bytes(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.2f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


@click.command("merge", cls=SfnCommand)
@click.argument("base")
@click.argument("donor")
@click.option("--take", required=True, help="Selector of the modules to take from DONOR, e.g. 'o' or 'o,norm@5-30'.")
@click.option("--out", type=click.Path(file_okay=False), help="Output model directory (not needed with --plan).")
@click.option("--plan", "dry_run", is_flag=True, help="Only print which tensor comes from which model; write nothing.")
@click.option("--tokenizer-from", type=click.Choice(["base", "donor"]), default="base", show_default=True)
@click.option("--alpha", type=float, default=1.0, show_default=True,
              help="Blend: selected tensors become W_B + ALPHA (W_R - W_B) (0.5 the midpoint, -1 subtracts R's change).")
@_shard
@_dtype
@_overwrite
@_overwrite_any
@pickle_option
@report_errors
def merge_command(base: str, donor: str, take: str, out: str | None, dry_run: bool, **options) -> None:
    """Write BASE with the modules selected by --take taken from DONOR (the Merge Stethoscope)."""
    from sfn.stethoscopes.surgery.merge import merge

    result = merge(base, donor, take, out, dry_run=dry_run, **options)
    summary = result.plan.summary()
    for source, row in summary.iterrows():
        click.echo(f"{source:>11}: {row['tensors']:5d} tensors, {_bytes(int(row['bytes']))}")
    if dry_run:
        taken = result.plan.frame().query("source != 'base'")
        click.echo(taken[["tensor", "source", "kinds", "shape", "dtype", "bytes"]].to_string(index=False))
    else:
        click.echo(f"wrote {result.out}")


@click.command("destroy", cls=SfnCommand)
@click.argument("model")
@click.option("--select", "selector", help="Modules to destroy, e.g. 'o@5-30' (remove: the layers touched, 'all@5-30').")
@click.option("--method", type=click.Choice(METHODS), default="zero", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Output model directory.")
@click.option("--std", type=float, default=0.02, show_default=True, help="Standard deviation for reinit.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for reinit (the same seed gives the same bits).")
@click.option("--sweep", "run_sweep", is_flag=True, help="Destroy each kind x method (x layer range) in memory and generate.")
@click.option("--prompt", "prompts", multiple=True, help="Sweep prompt (repeatable).")
@click.option("--prompts-file", type=click.Path(dir_okay=False, exists=True), help="Sweep prompts, one per line.")
@click.option("--kinds", help="Sweep module kinds, comma separated (default: every linear kind).")
@click.option("--methods", default="zero,reinit", show_default=True, help="Sweep methods, comma separated.")
@click.option("--layers", "layer_ranges", multiple=True, help="Sweep layer range, e.g. 5-30 (repeatable; default all layers).")
@click.option("--max-new-tokens", type=int, default=48, show_default=True)
@click.option("--table", type=click.Path(dir_okay=False), help="Write the sweep table here (.csv or .jsonl).")
@click.option("--no-levels", is_flag=True, help="Sweep: skip grading output levels I-IV (degeneration statistics only).")
@_shard
@_dtype
@_overwrite
@_overwrite_any
@pickle_option
@report_errors
def destroy_command(model: str, selector: str | None, method: str, out: str | None, run_sweep: bool, **options) -> None:
    """Destroy modules of MODEL (zero, reinit, remove) and write it to --out, or --sweep them in memory."""
    if run_sweep:
        _sweep(model, **options)
        return
    if selector is None or not out:
        raise SfnError("destroy needs --select and --out (or --sweep)")
    from sfn.stethoscopes.surgery.destroy import destroy

    result = destroy(
        model, selector, out, method=method, std=options["std"], seed=options["seed"],
        shard_size=options["shard_size"], dtype=options["dtype"], overwrite=options["overwrite"],
        overwrite_any=options["overwrite_any"], allow_pickle=options["allow_pickle"],
    )
    click.echo(f"{method}: {len(result.changes)} tensors changed; wrote {result.out}")


def _sweep(
    model: str, *, prompts, prompts_file, kinds, methods, layer_ranges, max_new_tokens, table, no_levels, std, seed,
    allow_pickle, **_
) -> None:
    # The sweep is an experiment (surgery with evaluation); this front end sits above both.
    from sfn.experiments.sweep import sweep

    texts = list(prompts)
    if prompts_file:
        texts += [line.strip() for line in Path(prompts_file).read_text().splitlines() if line.strip()]
    frame = sweep(
        model,
        texts,
        kinds=[k.strip() for k in kinds.split(",")] if kinds is not None else None,
        methods=[m.strip() for m in methods.split(",") if m.strip()],
        layers=list(layer_ranges) or [None],
        max_new_tokens=max_new_tokens,
        std=std,
        seed=seed,
        grader=None if no_levels else "auto",
        allow_pickle=allow_pickle,
        progress=show_progress(),
    )
    if table:
        if table.endswith(".jsonl"):
            Path(table).write_text("".join(json.dumps(row) + "\n" for row in frame.to_dict("records")))
        else:
            frame.to_csv(table, index=False)
    shown = [c for c in ("method", "kind", "layers", "prompt", "level", "distinct_ratio", "repeated_3gram_share", "output") if c in frame]
    click.echo(frame[shown].to_string(index=False, max_colwidth=60))


@click.group("plugin", cls=SfnGroup)
def plugin_group() -> None:
    """Module plugins: extract a tuned model's modules into a small file, apply it to its base."""


@plugin_group.command("extract")
@click.argument("base")
@click.argument("tuned")
@click.option("--select", "selector", default="o,norm", show_default=True, help="Modules of TUNED to keep.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Plugin file (.safetensors).")
@_overwrite
@_overwrite_any
@pickle_option
@report_errors
def extract_command(base: str, tuned: str, selector: str, out: str, overwrite: bool, overwrite_any: bool, allow_pickle: bool) -> None:
    """Write the selected modules of TUNED, with the identity of BASE, to a plugin file."""
    from sfn.stethoscopes.surgery.plugin import extract_plugin

    plugin = extract_plugin(base, tuned, selector, out, overwrite=overwrite, overwrite_any=overwrite_any, allow_pickle=allow_pickle)
    click.echo(f"wrote {out}: {len(plugin.entries)} parts, {_bytes(plugin.nbytes)}")


@plugin_group.command("apply")
@click.argument("base")
@click.argument("plugin")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output model directory.")
@click.option("--force", is_flag=True, help="Apply even if BASE is not the model the plugin was made for.")
@_shard
@_overwrite
@_overwrite_any
@pickle_option
@report_errors
def apply_command(
    base: str, plugin: str, out: str, force: bool, shard_size: str, overwrite: bool, overwrite_any: bool, allow_pickle: bool
) -> None:
    """Write BASE with PLUGIN's modules in place as a full model directory."""
    from sfn.stethoscopes.surgery.plugin import apply_plugin

    path = apply_plugin(
        base, plugin, out, force=force, shard_size=shard_size, overwrite=overwrite, overwrite_any=overwrite_any,
        allow_pickle=allow_pickle,
    )
    click.echo(f"wrote {path}")
