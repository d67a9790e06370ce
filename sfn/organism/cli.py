"""`sfn organism build`: reproduce the shipped model organism from its seed."""

from __future__ import annotations

from pathlib import Path

import click

from sfn.cli_errors import SfnGroup, report_errors, show_progress


@click.group("organism", cls=SfnGroup)
def organism_group() -> None:
    """The built-in model organism: a tiny base model B and its reasoning fine-tune R."""


@organism_group.command("build")
@click.option("--seed", default=0, show_default=True, help="Seed of the corpus, the initialisation and the data order.")
@click.option("--out", "-o", default="organism", show_default=True, type=click.Path(path_type=Path),
              help="Folder for base/, tuned/, organism-math.jsonl and provenance.json.")
@click.option("--quick", is_flag=True, help="Only the first steps of each stage (checks reproducibility; no evaluation).")
@report_errors(kept="--out may hold a partial build; run the command again to rebuild it")
def build_command(seed: int, out: Path, quick: bool) -> None:
    """Pretrain B on a generated world, fine-tune R on worked solutions, and measure both."""
    from sfn.organism.build import build_organism

    result = build_organism(seed, out, quick=quick, progress=show_progress())
    provenance = result.provenance
    click.echo(f"wrote {out}/base and {out}/tuned ({provenance['parameters']:,} parameters each) "
               f"in {provenance['build_seconds']:.0f} s")
    for name, accuracy in provenance["heldout_accuracy"].items():
        click.echo(f"  {name}: organism-math accuracy {accuracy['accuracy']:.1%} on {accuracy['samples']} held-out problems, "
                   f"{accuracy['mean_output_tokens']:.0f} tokens per answer")



@organism_group.command("data")
@click.option("--out", "-o", default="organism-train.jsonl", show_default=True, type=click.Path(path_type=Path),
              help="JSONL file of question/reasoning/answer records (what `sfn freeze --data` reads).")
@click.option("--seed", default=None, type=int, help="Corpus seed (default: the shipped organism's).")
@report_errors
def data_command(out: Path, seed: int | None) -> None:
    """Write R's fine-tuning set (the demo's Freeze data), regenerated from the organism's seed."""
    import shlex

    from sfn.organism.corpus import training_data
    from sfn.organism.world import INSTRUCTION

    path, template, count = training_data(out, seed)
    click.echo(f"wrote {path}: {count} records; `sfn freeze` trains on them as R was trained with "
               f"--format plain --instruction {shlex.quote(INSTRUCTION)} "
               f"--response-template {shlex.quote(template.replace(chr(10), chr(92) + 'n'))}")
