"""Notebook hygiene: importing sfn leaves the matplotlib backend alone; plots are Figures the caller saves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sfn.plotting import save_figure
from sfn.report.figures import plot_level_map, plot_losses, plot_merge_levels
from sfn.stethoscopes.freeze.report import plot_loss

IMPORT_EVERYTHING = r"""
import importlib, pkgutil, sys
import matplotlib
import sfn
before = matplotlib.get_backend()
for module in pkgutil.walk_packages(sfn.__path__, "sfn."):
    try:
        importlib.import_module(module.name)
    except ImportError as error:  # an optional dependency (vllm) that is not installed
        print("skipped", module.name, error, file=sys.stderr)
print(before, matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


@pytest.mark.slow
def test_importing_every_sfn_module_keeps_the_backend() -> None:
    env = {**__import__("os").environ, "MPLBACKEND": "svg"}
    completed = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, check=True,
                               env=env, cwd=Path(__file__).parents[1])
    before, after, pyplot = completed.stdout.split()
    assert (before, after) == ("svg", "svg")
    assert pyplot == "False"  # sfn draws without pyplot, so it never even loads it


def test_report_and_freeze_plots_return_figures(tmp_path: Path) -> None:
    levels = pd.DataFrame([{"kind": "o", "condition": "zero", "level_I": 3, "level_II": 1, "level_III": 0, "level_IV": 0},
                           {"kind": "q", "condition": "reinit", "level_I": 0, "level_II": 0, "level_III": 1, "level_IV": 3}])
    merge = pd.DataFrame([{"variant": "B", "level_I": 1, "level_II": 2, "level_III": 3, "level_IV": 4},
                          {"variant": "B+o", "level_I": 0, "level_II": 1, "level_III": 1, "level_IV": 8}])
    losses = {"all": pd.DataFrame({"step": [1, 2, 3], "loss": [2.0, 1.5, 1.2]}),
              "emb+head": pd.DataFrame({"step": [1, 2, 3], "loss": [2.0, 1.9, 1.8]})}
    open_before = plt.get_fignums()
    figures = {"levels": plot_level_map(levels, "5-30"), "merge": plot_merge_levels(merge),
               "losses": plot_losses(losses), "freeze": plot_loss(losses, "sfn freeze")}
    assert plt.get_fignums() == open_before
    for name, figure in figures.items():
        assert isinstance(figure, Figure), name
        assert save_figure(figure, tmp_path / f"{name}.png", dpi=60).read_bytes()[:4] == b"\x89PNG"
    assert len(figures["merge"].axes[0].patches) == 4 * len(merge)  # one bar per level per variant
    assert [len(line.get_xdata()) for line in figures["freeze"].axes[0].lines] == [3, 3]
