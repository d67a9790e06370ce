"""Figures without pyplot: every sfn plot is a `matplotlib.figure.Figure` that its caller saves.

Building figures this way leaves the user's matplotlib backend alone (a notebook keeps its inline
backend; importing sfn never calls `matplotlib.use`) and registers nothing in pyplot's list of open
figures, so nothing leaks and nothing needs closing. PNGs are drawn through the Agg canvas directly.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(width: float, height: float, **options) -> Figure:
    """A figure of `width` x `height` inches that belongs to no pyplot window."""
    return Figure(figsize=(width, height), **options)


def save_figure(figure: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Write `figure` as a PNG at `path` through the Agg canvas; returns the path."""
    path = Path(path)
    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)  # attaches itself as figure.canvas
    figure.savefig(path, dpi=dpi)
    return path
