"""Figures of how modules changed: per-head shares (heads.png) and the paper's clamped histograms next
to sfn's (histograms_clamped.png). Built on matplotlib Figure objects, without pyplot's global state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sfn.registry.kinds import LINEAR_KINDS
from sfn.stethoscopes.delta.heads import HEAD_KINDS

BARS = 80  # bars per clamped-histogram panel: enough to see the piles at the ends


def plot_heads(heads: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    """Save `heads_figure` as a PNG at `path`."""
    heads_figure(heads, title=title).savefig(path, dpi=100)
    return path


def heads_figure(heads: pd.DataFrame, *, title: str = "") -> Figure:
    """Layer x head heatmap of each head's share of its layer's ||dW||_F^2, one panel per kind."""
    kinds = [k for k in HEAD_KINDS if k in set(heads["kind"])]
    grids = {kind: heads[heads["kind"] == kind].pivot(index="layer", columns="head", values="share") for kind in kinds}
    # one layer axis, labelled once, when every kind has the same layers: each labelled tick is a
    # matplotlib artist, and four panels of 28 labelled layers took a third of the figure's time
    shared = len({tuple(grid.index) for grid in grids.values()}) == 1
    fig = Figure(figsize=(3.2 * max(len(kinds), 1) + 1, 1.6 + 0.22 * max(heads["layer"].nunique(), 1)))
    axes = fig.subplots(1, max(len(kinds), 1), squeeze=False, sharey=shared)[0]
    image = None
    for panel, (ax, kind) in enumerate(zip(axes, kinds)):
        grid = grids[kind]
        image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(kind if kind not in ("k", "v") else f"{kind} (key-value heads)", fontsize=10)
        ax.set_xlabel("head", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # heads are whole numbers, not 2.5
        if panel == 0 or not shared:
            ax.set_yticks(range(len(grid)), [str(i) for i in grid.index], fontsize=9)
        ax.tick_params(labelsize=9)  # >= 9 px where the report shows the figure
    axes[0].set_ylabel("layer")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="share of the layer's change", fraction=0.03)
    fig.suptitle(f"{title}\nper-head share of each layer's ||W_R - W_B||_F^2", fontsize=10)
    return fig


def _rebinned(counts: np.ndarray, bars: int) -> np.ndarray:
    group = max(len(counts) // bars, 1)
    return np.add.reduceat(counts.astype(float), np.arange(0, len(counts), group))


def plot_clamped_histograms(table: pd.DataFrame, path: Path, *, every: int = 5) -> Path:
    """For each linear kind every `every` layers: sfn's histogram of r (out-of-range values left out)
    next to the paper's (r clamped into the range, so they pile up in the end bars), same axis."""
    layered = table[table["layer"].notna()]
    kinds = [k for k in LINEAR_KINDS if k in set(layered["kind"])]
    layers = sorted(int(x) for x in layered["layer"].unique())[:: max(every, 1)]
    low, high = table.attrs.get("clip", (-1.0, 1.0))
    rows, columns = max(len(layers), 1), 2 * max(len(kinds), 1)
    fig = Figure(figsize=(1.6 * columns, 1.3 * rows + 0.8))
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, layer in enumerate(layers):
        for j, kind in enumerate(kinds):
            match = layered[(layered["layer"] == layer) & (layered["kind"] == kind)]
            for side, (column, colour) in enumerate((("histogram", "tab:blue"), ("clamped_histogram", "tab:red"))):
                ax = axes[i, 2 * j + side]
                if not match.empty:
                    counts = _rebinned(np.asarray(match.iloc[0][column]), BARS)
                    edges = np.linspace(low, high, len(counts) + 1)
                    ax.bar(edges[:-1], counts / max(counts.sum(), 1), width=np.diff(edges), align="edge", color=colour)
                ax.set_yticks([])
                ax.tick_params(labelsize=5)
                if i == 0:
                    ax.set_title(f"{kind}: {'sfn' if side == 0 else 'clamped'}", fontsize=7)
                if j == 0 and side == 0:
                    ax.set_ylabel(f"layer {layer}", fontsize=7)
    fig.suptitle("relative change r: sfn leaves out |r| beyond the range (blue); the paper clamps it into the end bars (red)",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path
