"""`sfn report DIR`: the one-page diagnosis of a demo folder, as report.html and report.md."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sfn.lazy import lazy_exports

FIGURES_DIR = "report_figures"

__all__ = ["DemoData", "Verdict", "conclusions", "load_demo", "write_report"]
# The verdict line render_markdown writes in a section.
_SUPPORTS = re.compile(r"^> \*\*Supports\.\*\* (.+?)\.  $", re.MULTILINE)


def write_report(folder: str | Path) -> dict[str, Path]:
    """Write FOLDER/report.html (self-contained) and FOLDER/report.md from what `sfn demo` left there."""
    from sfn.report.load import load_demo
    from sfn.report.render import render_html, render_markdown
    from sfn.report.sections import build_sections

    data = load_demo(folder)
    folder = Path(folder)
    sections = build_sections(data, folder / FIGURES_DIR)
    title = f"sfn diagnosis: {data.pair['label']}"
    paths = {"html": folder / "report.html", "markdown": folder / "report.md"}
    paths["html"].write_text(render_html(sections, title), encoding="utf-8")
    links = {path: os.path.relpath(path, folder) for section in sections for _, path in section.figures}
    paths["markdown"].write_text(render_markdown(sections, title, links), encoding="utf-8")
    return paths


def conclusions(folder: str | Path) -> list[tuple[str, str]]:
    """(stethoscope, what its finding supports) for each section of FOLDER/report.md, in page order:
    the lines `sfn demo` ends with, instead of the whole page."""
    text = (Path(folder) / "report.md").read_text(encoding="utf-8")
    found = []
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        title, _, body = section.partition("\n")
        verdict = _SUPPORTS.search(body)
        if verdict:
            found.append((title.strip(), verdict.group(1)))
    return found


# pandas and matplotlib load on first use, so that `sfn report -h` stays fast.
lazy_exports(__name__, {"DemoData": "sfn.report.load", "load_demo": "sfn.report.load", "Verdict": "sfn.report.verdicts"})
