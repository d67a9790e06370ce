"""The `sfn` command line: a few lines per command over the public Python functions."""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
from pathlib import Path

import click

from sfn import __version__
from sfn.errors import SfnError


def report_errors(command):
    """Print an SfnError as a one-paragraph message (no traceback) and exit with status 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SfnError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


_VERBOSITY = {"quiet": False, "verbose": False}


def set_verbosity(*, quiet: bool = False, verbose: bool = False) -> None:
    """What every command prints besides its result: --quiet shows errors only (no progress bars, no
    warnings), --verbose adds informational logs of sfn and transformers."""
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose contradict each other; give one of them")
    _VERBOSITY.update(quiet=quiet, verbose=verbose)
    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    logging.getLogger("sfn").setLevel(level)
    if "transformers" in sys.modules:
        sys.modules["transformers"].logging.set_verbosity(level)
    else:  # read by transformers when it is first imported
        os.environ["TRANSFORMERS_VERBOSITY"] = logging.getLevelName(level).lower()


def show_progress() -> bool:
    """Whether the running command draws progress bars (not after --quiet)."""
    return not _VERBOSITY["quiet"]


def with_verbosity(command: click.Command) -> click.Command:
    """Give `command`, or every command of a group, the same --quiet/-q and --verbose/-v (once)."""
    if getattr(command, "_sfn_verbosity", False):
        return command
    command._sfn_verbosity = True  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            with_verbosity(subcommand)
        return command
    command.params += [
        click.Option(["--quiet", "-q"], is_flag=True, help="Print the result and errors only: no progress, no warnings."),
        click.Option(["--verbose", "-v"], is_flag=True, help="Also print informational messages of sfn and transformers."),
    ]
    callback = command.callback

    @functools.wraps(callback)
    def run(*args, quiet: bool = False, verbose: bool = False, **kwargs):
        set_verbosity(quiet=quiet, verbose=verbose)
        return callback(*args, **kwargs)

    command.callback = run
    return command


class LazyGroup(click.Group):
    """A command group whose subcommands from other packages are imported only when used."""

    lazy_commands: dict[str, str] = {}  # name -> "module:attribute"

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands:
            module, attribute = self.lazy_commands[name].split(":")
            return with_verbosity(getattr(importlib.import_module(module), attribute))
        command = super().get_command(ctx, name)
        return with_verbosity(command) if command is not None else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="sfn")
def main() -> None:
    """Stethoscope for Networks: find which modules of a transformer LLM carry which ability."""
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)


select_option = click.option(
    "--select", "-s", default=None, help="Modules: kinds/groups (o, qkv, mlp, norm), re:REGEX, @LAYERS (see `sfn modules -h`)."
)
layers_option = click.option("--layers", "-l", default=None, help="Layer ranges applied to --select, e.g. 5-30 or 0-3,10 or -4--1.")
pickle_option = click.option("--allow-pickle", is_flag=True, help="Load pickled .bin/.pt checkpoints (runs their unpickler).")


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

    table = modules(model, select, layers=layers, allow_pickle=allow_pickle)
    shown = table[table["selected"]] if selected_only else table
    click.echo(f"{table.attrs['model']}: {table.attrs['model_type'] or 'unknown architecture'}, "
               f"{table.attrs['num_layers']} layers, tied embeddings: {table.attrs['tied_embeddings']}")
    columns = ["tensor", "kind", "layer", "shape", "dtype", "bytes", "fused"] + (["selected"] if select or layers else [])
    click.echo(shown[columns].to_string(index=False) if not shown.empty else "(nothing)")
    chosen = table[table["selected"]]
    if select or layers:
        click.echo(
            f"\nselector {select or ''}{'@' + layers if layers else ''} matches {len(chosen)} parts in "
            f"{chosen['tensor'].nunique()} tensors ({chosen['bytes'].sum() / 2**20:.2f} MiB)"
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
@click.option("--no-plots", is_flag=True, help="Skip the figures.")
@pickle_option
@report_errors
def delta_command(base, tuned, out, select, layers, bins, clip, eps, every, no_plots, allow_pickle) -> None:
    """How far TUNED's weights moved from BASE's, per layer and module (the Delta stethoscope)."""
    from sfn.stethoscopes.delta import delta, ranking_text, summarize, write_outputs

    try:
        low, high = (float(x) for x in clip.split(","))
    except ValueError:
        raise SfnError(f"--clip must be LOW,HIGH like -1,1 (got {clip!r})") from None
    table = delta(base, tuned, select, layers=layers, bins=bins, clip=(low, high), eps=eps, allow_pickle=allow_pickle,
                  progress=show_progress())
    paths = write_outputs(table, out, every=every, plots=not no_plots)
    click.echo(f"delta: {tuned} vs {base} ({table.attrs['model_type']}, {table.attrs['num_layers']} layers, "
               f"{len(table)} modules)\n")
    click.echo(ranking_text(summarize(table)))
    for note in table.attrs["notes"]:
        click.echo(f"note: {note}")
    click.echo("\nwrote " + ", ".join(str(p) for p in paths.values()))


@main.command("make-pair")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--shape", default="tiny", show_default=True, help="tiny, qwen2.5-0.5b or qwen2.5-1.5b.")
@click.option("--seed", default=0, show_default=True)
@report_errors
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
}


if __name__ == "__main__":
    main()
