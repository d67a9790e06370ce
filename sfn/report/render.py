"""Writing the sections as one self-contained HTML page (figures as data URIs, no external
resource of any kind) and as Markdown for terminals and pull requests."""

from __future__ import annotations

import html
from pathlib import Path

from sfn import __version__
from sfn.report.figures import LEVEL_COLOURS, data_uri
from sfn.report.sections import Section, Table

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.verdict { background: #f6f8fa; border-left: 4px solid #4a78b5; padding: 0.6em 1em; margin: 1em 0; }
.verdict p { margin: 0.25em 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
.caption { font-weight: 600; margin-bottom: 0; }
pre { background: #f6f8fa; padding: 0.5em; white-space: pre-wrap; word-break: break-all; font-size: 0.8em; }
.files { font-size: 0.9em; }
footer { margin-top: 3em; font-size: 0.8em; color: #777; }
"""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in table.columns) if any(table.columns) else ""
    body = []
    for index, row in enumerate(table.rows):
        level = table.levels[index] if index < len(table.levels) else None
        style = f' style="border-left: 6px solid {LEVEL_COLOURS[level]}"' if level in LEVEL_COLOURS else ""
        body.append(f"<tr{style}>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>")
    return f"<table>{'<thead><tr>' + head + '</tr></thead>' if head else ''}<tbody>{''.join(body)}</tbody></table>"


def _html_section(section: Section) -> str:
    parts = [f"<section><h2>{html.escape(section.title)}</h2><p>{html.escape(section.intro)}</p>"]
    if section.verdict:
        v = section.verdict
        parts.append(f'<div class="verdict"><p><b>Finding.</b> {html.escape(v.finding)}.</p>'
                     f"<p><b>Supports.</b> {html.escape(v.supports)}.</p><p><b>Strength.</b> {html.escape(v.strength)}.</p></div>")
    for caption, table in section.tables:
        if caption:
            parts.append(f'<p class="caption">{html.escape(caption)}</p>')
        parts.append(_html_table(table))
    for caption, path in section.figures:
        parts.append(f'<figure><img src="{data_uri(path)}" alt="{html.escape(caption)}">'
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if section.files:
        # Links, not loads: the page stays self-contained and opens the data beside it on a click.
        parts.append('<p class="files">Data: ' + ", ".join(
            f'<a href="{html.escape(path)}">{html.escape(path)}</a> ({html.escape(what)})' for what, path in section.files) + ".</p>")
    if section.commands:
        parts.append('<details class="commands"><summary>Reproduce by hand</summary>')
        for what, lines in section.commands:
            parts.append(f"<p>{html.escape(what)}:</p><pre>{html.escape(chr(10).join(lines))}</pre>")
        parts.append("</details>")
    return "".join(parts) + "</section>"


def render_html(sections: list[Section], title: str) -> str:
    body = "\n".join(_html_section(section) for section in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>"
            f"<p>Delta, Merge, Destruction and Freeze stethoscopes (Stethoscope for Networks) on one base/fine-tune pair.</p>"
            f"\n{body}\n<footer>Written by sfn {__version__} (sfn report).</footer></body></html>\n")


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown_table(table: Table) -> str:
    columns = table.columns if any(table.columns) else ["", ""]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_markdown_cell(cell) for cell in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_markdown(sections: list[Section], title: str, figure_links: dict[Path, str]) -> str:
    """Markdown with the same content; figures are linked by `figure_links` (path -> relative link)."""
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", "", section.intro, ""]
        if section.verdict:
            v = section.verdict
            lines += [f"> **Finding.** {v.finding}.  ", f"> **Supports.** {v.supports}.  ", f"> **Strength.** {v.strength}.", ""]
        for caption, table in section.tables:
            lines += ([f"**{caption}**", ""] if caption else []) + [_markdown_table(table), ""]
        for caption, path in section.figures:
            lines += [f"![{caption}]({figure_links.get(path, path)})", ""]
        if section.files:
            lines += ["Data: " + ", ".join(f"[{path}]({path}) ({what})" for what, path in section.files) + ".", ""]
        if section.commands:
            lines += ["Reproduce by hand:", ""]
            for what, commands in section.commands:
                lines += [f"- {what}:", "", "  ```sh", *(f"  {command}" for command in commands), "  ```", ""]
    return "\n".join(lines)
