"""`sfn report DIR`: rewrite the one-page diagnosis of a demo folder."""

from __future__ import annotations

from pathlib import Path

import click

from sfn.cli_errors import SfnCommand, report_errors


@click.command("report", cls=SfnCommand)
@click.argument("folder", type=click.Path(path_type=Path))
@report_errors
def report_command(folder: Path) -> None:
    """Write FOLDER/report.html (self-contained, figures embedded) and FOLDER/report.md from `sfn demo --out FOLDER`."""
    from sfn.report import write_report

    paths = write_report(folder)
    click.echo(f"wrote {paths['html']} and {paths['markdown']}")
