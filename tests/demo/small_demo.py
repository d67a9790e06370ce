"""One small demo run on the shipped organism, shared by the demo and report tests (one run per session)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfn.demo import DemoSettings

# Enough of every stage to exercise it end to end, in about a minute.
SMALL = DemoSettings(eval_limit=6, max_new_tokens=80, batch_size=6, destruction_prompts=2, freeze_steps=3)
# Written beside the run by these tests only: for each figure saved, its smallest font and its dpi.
FONTS_FILE = "figure_fonts.json"


@contextlib.contextmanager
def recording_figure_fonts(record: dict[str, dict[str, float]], folder: Path) -> Iterator[None]:
    """Every figure saved inside the block adds {path relative to folder: smallest_pt, dpi} to `record`,
    measured after saving (tick labels get their text only when drawn)."""
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    original = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        result = original(self, fname, *args, **kwargs)
        sizes = [text.get_fontsize() for text in self.findobj(Text) if text.get_visible() and text.get_text().strip()]
        # Outputs are staged in a hidden `.NAME.*.partial` folder and renamed into place: key the final path.
        path = Path(*(part for part in Path(fname).resolve().parts if not (part.startswith(".") and part.endswith(".partial"))))
        key = str(path.relative_to(folder.resolve())) if path.is_relative_to(folder.resolve()) else str(path)
        record[key] = {"smallest_pt": min(sizes) if sizes else 0.0, "dpi": float(kwargs.get("dpi") or self.dpi)}
        return result

    Figure.savefig = savefig
    try:
        yield
    finally:
        Figure.savefig = original


def small_demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sfn.demo import run_demo

    out = tmp_path_factory.getbasetemp() / "organism-demo"
    if not (out / "demo.json").is_file():
        fonts: dict[str, dict[str, float]] = {}
        # A relative OUT, as the README's `sfn demo --out runs/demo` gives it.
        with recording_figure_fonts(fonts, out), contextlib.chdir(out.parent):
            run_demo(Path(out.name), settings=SMALL)
        (out / FONTS_FILE).write_text(json.dumps(fonts, indent=2))
    return out
