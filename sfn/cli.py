"""The `sfn` command line: a few lines per command over the public Python functions."""

from __future__ import annotations

import importlib
import logging
import textwrap
from pathlib import Path

import click

from sfn import __version__
from sfn.cli_errors import SfnGroup, pickle_option, report_errors, show_progress, with_verbosity
from sfn.errors import SfnError

__all__ = ["main"]


class LazyGroup(SfnGroup):
    """A command group whose subcommands from other packages are imported only when used.

    `sfn -h` lists them from `lazy_help` (their one-line help), so listing imports none of them;
    a command missing there is imported to read its help.
    """

    lazy_commands: dict[str, str] = {}  # name -> "module:attribute"
    lazy_help: dict[str, str] = {}  # name -> the command's one-line help (tests/test_cli_errors.py keeps them equal)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands:
            module, attribute = self.lazy_commands[name].split(":")
            return with_verbosity(getattr(importlib.import_module(module), attribute))
        command = super().get_command(ctx, name)
        return with_verbosity(command) if command is not None else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)
        rows = []
        for name in names:
            if name in self.lazy_commands and name in self.lazy_help:
                rows.append((name, textwrap.shorten(self.lazy_help[name], max(limit, 10), placeholder="...")))
            elif (command := self.get_command(ctx, name)) is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="sfn")
def main() -> None:
    """Stethoscope for Networks: find which modules of a transformer LLM carry which ability."""
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)


select_option = click.option(
    "--select", "-s", default=None, help="Modules: kinds/groups (o, qkv, mlp, norm), re:REGEX, @LAYERS (see `sfn modules -h`)."
)
layers_option = click.option("--layers", "-l", default=None, help="Layer ranges applied to --select, e.g. 5-30 or 0-3,10 or -4--1.")


@main.command("modules")
@click.argument("model")
@select_option
@layers_option
@click.option("--selected-only", is_flag=True, help="List only what the selector matches.")
@pickle_option
@report_errors
def modules_command(model: str, select: str | None, layers: str | None, selected_only: bool, allow_pickle: bool) -> None:
    """List MODEL's tensors with kind, layer, shape, dtype and size, and what a selector matches.

    \b
    Selector syntax (the same for every sfn command):
      o                 every o_proj            o,norm        o_proj and all norms
      attn@5-30         q,k,v,o of layers 5..30 mlp@0-3,10    MLP of layers 0-3 and 10
      o@-4--1           o_proj of the last 4    re:.*\\.1\\..*  tensors fullmatching a regex
      o@0-5; mlp@20-23  ';' joins clauses
    """
    from sfn.inspect import modules

    result = modules(model, select, layers=layers, allow_pickle=allow_pickle)
    table, summary = result.table, result.summary
    shown = table[table["selected"]] if selected_only else table
    click.echo(f"{summary['model']}: {summary['model_type'] or 'unknown architecture'}, "
               f"{summary['num_layers']} layers, tied embeddings: {summary['tied_embeddings']}")
    columns = ["tensor", "kind", "layer", "shape", "dtype", "bytes", "fused"] + (["selected"] if select or layers else [])
    click.echo(shown[columns].to_string(index=False) if not shown.empty else "(nothing)")
    if select or layers:
        click.echo(
            f"\nselector {select or ''}{'@' + layers if layers else ''} matches {summary['selected_parts']} parts in "
            f"{summary['selected_tensors']} tensors ({summary['selected_bytes'] / 2**20:.2f} MiB)"
        )


@main.command("delta")
@click.argument("base")
@click.argument("tuned")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Folder for delta.csv, summary.json and figures.")
@select_option
@layers_option
@click.option("--bins", default=2001, show_default=True, help="Histogram bins of the relative change.")
@click.option("--clip", default="-1,1", show_default=True, help="Histogram range of the relative change, LOW,HIGH.")
@click.option("--eps", default=1e-8, show_default=True, help="r = (W_R - W_B) / (|W_B| + eps).")
@click.option("--every", default=5, show_default=True, help="histograms.png shows every k-th layer.")
@click.option("--tol", default=1e-3, show_default=True, help="moved_share counts |W_R - W_B| > tol x |W_B|.")
@click.option("--spectral", is_flag=True, help="Also the top singular values of each 2-D update (randomized SVD).")
@click.option("--paper-clamp", is_flag=True, help="Also draw the paper's clamped histograms next to sfn's.")
@click.option("--no-plots", is_flag=True, help="Skip the figures.")
@pickle_option
@report_errors(kept="--out holds only the files finished before the interrupt (the tables come before the figures)")
def delta_command(base, tuned, out, select, layers, bins, clip, eps, every, tol, spectral, paper_clamp, no_plots,
                  allow_pickle) -> None:
    """How far TUNED's weights moved from BASE's, per layer and module (the Delta stethoscope)."""
    from sfn.io.guard import guard_output
    from sfn.stethoscopes.delta import delta, ranking_text, summarize, write_outputs

    guard_output(out, inputs=[base, tuned], replace=False)
    try:
        low, high = (float(x) for x in clip.split(","))
    except ValueError:
        raise SfnError(f"--clip must be LOW,HIGH like -1,1 (got {clip!r})") from None
    result = delta(base, tuned, select, layers=layers, bins=bins, clip=(low, high), eps=eps, allow_pickle=allow_pickle,
                   tol=tol, spectral=spectral, progress=show_progress())
    paths = write_outputs(result, out, every=every, plots=not no_plots, paper_clamp=paper_clamp)
    click.echo(f"delta: {tuned} vs {base} ({result.summary['model_type']}, {result.summary['num_layers']} layers, "
               f"{len(result.table)} modules)\n")
    click.echo(ranking_text(summarize(result)))
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo("\nwrote " + ", ".join(str(p) for p in paths.values()))


@main.command("make-pair")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--shape", default="tiny", show_default=True, help="tiny, qwen2.5-0.5b or qwen2.5-1.5b.")
@click.option("--seed", default=0, show_default=True)
@report_errors(kept="OUT may hold a partial pair; run the command again to rewrite it")
def make_pair_command(out: Path, shape: str, seed: int) -> None:
    """Write a synthetic base/tuned pair (OUT/base, OUT/tuned) whose o_proj moved bimodally."""
    from sfn.synthetic import make_pair

    base, tuned = make_pair(out, shape, seed=seed, progress=show_progress())
    click.echo(f"wrote {base} and {tuned}")


main.lazy_commands = {
    "merge": "sfn.stethoscopes.surgery.cli:merge_command",
    "destroy": "sfn.stethoscopes.surgery.cli:destroy_command",
    "plugin": "sfn.stethoscopes.surgery.cli:plugin_group",
    "freeze": "sfn.stethoscopes.freeze.cli:freeze_command",
    "eval": "sfn.eval.cli:eval_command",
    "organism": "sfn.organism.cli:organism_group",
    "demo": "sfn.demo.cli:demo_command",
    "report": "sfn.report.cli:report_command",
    "map": "sfn.experiments.cli:map_command",
}
main.lazy_help = {
    "merge": "Write BASE with the modules selected by --take taken from DONOR (the Merge Stethoscope).",
    "destroy": "Destroy modules of MODEL (zero, reinit, remove) and write it to --out, or --sweep them in memory.",
    "plugin": "Module plugins: extract a tuned model's modules into a small file, apply it to its base.",
    "freeze": "Fine-tune MODEL with only the selected modules trainable (the Freeze stethoscope).",
    "eval": "Evaluate MODEL (a directory, .gguf file or hub id) on a benchmark.",
    "organism": "The built-in model organism: a tiny base model B and its reasoning fine-tune R.",
    "demo": "Delta, Merge, Map, Destruction and Freeze on one pair, summed up in OUT/report.html and OUT/report.md.",
    "report": "Write FOLDER/report.html (self-contained, figures embedded) and FOLDER/report.md from `sfn demo --out FOLDER`.",
    "map": "Map where TUNED's change lives and what it matters for: every kind x layer window transplanted or destroyed.",
}


if __name__ == "__main__":
    main()
