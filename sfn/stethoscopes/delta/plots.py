"""The paper's Delta figures: change per kind across layers (Fig. 2), r histograms (Fig. 3), a heatmap.

Each `plot_*` function returns a `matplotlib.figure.Figure` and saves nothing; `delta_figures` names
them by file, and `write_outputs` saves them. Drawing is kept cheap for large models: one artist per
histogram panel (precomputed counts drawn as stairs), all panels in one axes, and fixed margins
instead of `tight_layout`, which measures every label of every panel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import StepPatch
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Affine2D

from sfn.plotting import new_figure
from sfn.registry.kinds import LINEAR_KINDS
from sfn.stethoscopes.delta.compute import DeltaResult, kinds_in


def delta_figures(result: DeltaResult | pd.DataFrame, *, every: int = 5) -> dict[str, Figure]:
    """Every Delta figure by its file name (a new figure is one more entry here)."""
    table = figure_table(result)
    return {
        "norms.png": plot_norms(table),
        "histograms.png": plot_histograms(table, every=every),
        "heatmap.png": plot_heatmap(table),
    }


def figure_table(result: DeltaResult | pd.DataFrame) -> pd.DataFrame:
    """The table the figures draw: a `DeltaResult`'s, with the model names, the clip range and the bin
    edges in `attrs` of a shallow copy (so that `result.table` stays a plain DataFrame); a table
    (read back from delta.csv, say) as given."""
    if not isinstance(result, DeltaResult):
        return result
    table = result.table.copy(deep=False)
    table.attrs.update(base=result.summary["base"], tuned=result.summary["tuned"], clip=result.summary["clip"],
                       bin_edges=result.bin_edges.tolist())
    return table


def _layered(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of layers, without the table's attrs: pandas deep-copies attrs (2000 bin edges) on every
    column access and filter, which cost more than drawing."""
    plain = table.copy(deep=False)
    plain.attrs = {}
    return plain[plain["layer"].notna()]


def _margins(figure: Figure, *, left: float, right: float, bottom: float, top: float, **spacing: float) -> None:
    """Fixed margins in inches (not figure fractions), so that labels fit at any figure size."""
    width, height = figure.get_size_inches()
    figure.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height, **spacing)


def plot_norms(table: DeltaResult | pd.DataFrame) -> Figure:
    """Figure 2: ||W_R - W_B|| (left) and its ratio to ||W_B|| (right), one line per kind, across layers."""
    table = figure_table(table)
    layered = _layered(table)
    figure = new_figure(13, 4.5)
    axes = figure.subplots(1, 2)
    for kind in kinds_in(layered):
        rows = layered[layered["kind"] == kind].sort_values("layer")
        style = {"linewidth": 2.6, "zorder": 3} if kind == "o" else {"linewidth": 1.2}
        axes[0].plot(rows["layer"], rows["abs_norm"], label=kind, **style)
        axes[1].plot(rows["layer"], rows["rel_norm"], label=kind, **style)
    # plain text, not mathtext: building matplotlib's math parser costs about a second per process
    axes[0].set_title("absolute change ‖W_R − W_B‖_F")
    axes[1].set_title("relative change ‖W_R − W_B‖_F / ‖W_B‖_F")
    for axis in axes:
        axis.set_xlabel("layer")
        axis.grid(alpha=0.3)
    # Outside the axes: inside, "best" still covered curves (issue 12).
    axes[1].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, frameon=False)
    figure.suptitle(_title(table), fontsize=10)
    _margins(figure, left=0.8, right=1.2, bottom=0.6, top=0.75, wspace=0.18)
    return figure


def plot_histograms(table: DeltaResult | pd.DataFrame, *, every: int = 5) -> Figure:
    """Figure 3: histograms of the element-wise relative change of each linear kind, every `every` layers.

    All panels share one window around zero that holds 99.5% of the in-range values of the plotted
    modules, rebinned to about 60 bars, so that small fine-tuning changes are visible. Each panel is
    scaled to its own peak. The panels are laid out in a single axes (one stairs artist each, placed by
    its transform), since dozens of separate axes cost seconds to build and draw.
    """
    table = figure_table(table)
    layered = _layered(table)
    kinds = [k for k in LINEAR_KINDS if k in set(layered["kind"])]
    layers = sorted(int(x) for x in layered["layer"].unique())[:: max(every, 1)]
    shown = layered[layered["kind"].isin(kinds) & layered["layer"].isin(layers)]
    edges = np.asarray(table.attrs.get("bin_edges", []))
    first, last, group = _window(shown, len(edges) - 1)
    rows, columns = max(len(layers), 1), max(len(kinds), 1)
    figure = new_figure(2.1 * columns, 1.5 * rows + 0.9)
    _margins(figure, left=0.35, right=0.15, bottom=0.35, top=0.75)
    axis = figure.add_subplot()
    axis.set_axis_off()
    axis.set_xlim(-_GAP / 2, columns * (1 + _GAP) - _GAP / 2)
    axis.set_ylim(-rows * (1 + _GAP) + _GAP / 2, _GAP / 2)
    low, high = (edges[first], edges[last]) if len(edges) else (-1.0, 1.0)
    # plain columns, not iterrows: every pandas row copies the table's attrs
    cells = {(int(layer), kind): (histogram, bimodal) for layer, kind, histogram, bimodal
             in zip(shown["layer"], shown["kind"], shown["histogram"], shown["bimodal"])}
    for i, layer in enumerate(layers):
        for j, kind in enumerate(kinds):
            if (layer, kind) not in cells or not len(edges):
                continue
            histogram, bimodal = cells[(layer, kind)]
            counts = np.asarray(histogram, dtype=float)[first:last].reshape(-1, group).sum(axis=1)
            shares = counts / max(counts.sum(), 1)
            # r in [low, high] and shares in [0, peak] onto panel (i, j): a unit square, 8% headroom
            place = (Affine2D().translate(-low, 0).scale(1 / (high - low), 0.92 / max(shares.max(), 1e-12))
                     .translate(j * (1 + _GAP), -(i + 1) * (1 + _GAP) + _GAP))
            # added as an artist, not with axis.stairs: the limits are set above, and updating them per patch is slow
            axis.add_artist(StepPatch(shares, edges[first : last + 1 : group], fill=True,
                                      color="tab:red" if bimodal else "tab:blue", transform=place + axis.transData))
    _panel_frames(axis, rows, columns, low, high)
    for j, kind in enumerate(kinds):
        axis.text(j * (1 + _GAP) + 0.5, 0.02, kind, ha="center", va="bottom", fontsize=9)
    for i, layer in enumerate(layers):
        axis.text(-0.03, -(i + 1) * (1 + _GAP) + _GAP + 0.5, f"layer {layer}", ha="right", va="center", rotation=90, fontsize=9)
    figure.suptitle(f"{_title(table)}\nrelative change r = (W_R - W_B)/|W_B| (central 99.5%); red = bimodal", fontsize=9)
    return figure


_GAP = 0.08  # between histogram panels, in panel widths


def _panel_frames(axis: Axes, rows: int, columns: int, low: float, high: float) -> None:
    """The boxes of the histogram panels, and r ticks under each column, as two line collections."""
    boxes, ticks = [], []
    for i in range(rows):
        for j in range(columns):
            x, y = j * (1 + _GAP), -(i + 1) * (1 + _GAP) + _GAP
            boxes.append([(x, y), (x + 1, y), (x + 1, y + 1), (x, y + 1), (x, y)])
    values = [v for v in MaxNLocator(4, symmetric=True).tick_values(low, high) if low <= v <= high]
    bottom = -rows * (1 + _GAP) + _GAP
    for j in range(columns):
        for value in values:
            x = j * (1 + _GAP) + (value - low) / (high - low)
            ticks.append([(x, bottom), (x, bottom - 0.03)])
            axis.text(x, bottom - 0.05, f"{value:g}", ha="center", va="top", fontsize=9)
    axis.add_collection(LineCollection(boxes, colors="black", linewidths=0.8))
    axis.add_collection(LineCollection(ticks, colors="black", linewidths=0.8))


def _window(rows: pd.DataFrame, bins: int, mass: float = 0.995, bars: int = 60) -> tuple[int, int, int]:
    """(first bin, end bin, bins per bar): a window symmetric about the centre holding `mass` of the counts."""
    if rows.empty or bins <= 0:
        return 0, max(bins, 0), 1
    total = np.sum(np.stack(rows["histogram"].to_list()), axis=0).astype(float)
    centre = bins / 2
    distance = np.abs(np.arange(bins) + 0.5 - centre)
    order = np.argsort(distance, kind="stable")
    needed = int(np.searchsorted(np.cumsum(total[order]), mass * total.sum())) if total.sum() else bins - 1
    half = max(int(np.ceil(distance[order[min(needed, bins - 1)]])), 3)
    group = max((2 * half) // bars, 1)
    half = -(-half // group) * group
    first, last = max(int(centre - half), 0), min(int(centre + half), bins)
    last = first + (last - first) // group * group
    return first, last, group


def plot_heatmap(table: DeltaResult | pd.DataFrame) -> Figure:
    """Relative change, layer x kind, on a log colour scale."""
    table = figure_table(table)
    layered = _layered(table)
    kinds = list(kinds_in(layered))
    grid = layered.pivot_table(index="layer", columns="kind", values="rel_norm", aggfunc="first").reindex(columns=kinds)
    values = grid.to_numpy(dtype=float)
    positive = values[np.isfinite(values) & (values > 0)]
    figure = new_figure(2.6 + 0.7 * max(len(kinds), 1), 1.7 + 0.25 * max(len(grid), 1))
    axis = figure.subplots()
    if positive.size:
        shown = np.log10(np.where(values > 0, values, np.nan))
        image = axis.imshow(shown, aspect="auto", cmap="magma", interpolation="nearest")
        figure.colorbar(image, ax=axis, label="log10 relative change")
    axis.set_xticks(range(len(kinds)), kinds, rotation=45, ha="right", fontsize=9)
    axis.set_yticks(range(len(grid)), [str(i) for i in grid.index], fontsize=9)
    axis.set_ylabel("layer")
    axis.set_title(_title(table), fontsize=9)
    _margins(figure, left=0.75, right=0.3, bottom=0.8, top=0.4)
    return figure


def _title(table: pd.DataFrame) -> str:
    """'tuned vs base' by the shortest path tails that tell them apart ('model vs model' says nothing)."""
    base, tuned = (Path(str(table.attrs.get(key, default))).parts for key, default in (("base", "B"), ("tuned", "R")))
    depth = 1
    while depth < max(len(base), len(tuned)) and base[-depth:] == tuned[-depth:]:
        depth += 1
    return f"{'/'.join(tuned[-depth:])} vs {'/'.join(base[-depth:])}"
