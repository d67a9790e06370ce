"""The paper's Delta figures: change per kind across layers (Fig. 2), r histograms (Fig. 3), a heatmap."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sfn.stethoscopes.delta.compute import kinds_in  # noqa: E402
from sfn.registry.kinds import LINEAR_KINDS  # noqa: E402


def _layered(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["layer"].notna()]


def plot_norms(table: pd.DataFrame, path: Path) -> Path:
    """Figure 2: ||W_R - W_B|| (left) and its ratio to ||W_B|| (right), one line per kind, across layers."""
    layered = _layered(table)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for kind in kinds_in(layered):
        rows = layered[layered["kind"] == kind].sort_values("layer")
        style = {"linewidth": 2.6, "zorder": 3} if kind == "o" else {"linewidth": 1.2}
        axes[0].plot(rows["layer"], rows["abs_norm"], label=kind, **style)
        axes[1].plot(rows["layer"], rows["rel_norm"], label=kind, **style)
    axes[0].set_title(r"absolute change $\|W_R - W_B\|_F$")
    axes[1].set_title(r"relative change $\|W_R - W_B\|_F / \|W_B\|_F$")
    for ax in axes:
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    # Outside the axes: inside, "best" still covered curves (issue 12).
    axes[1].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, frameon=False)
    fig.suptitle(_title(table), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_histograms(table: pd.DataFrame, path: Path, *, every: int = 5) -> Path:
    """Figure 3: histograms of the element-wise relative change of each linear kind, every `every` layers.

    All panels share one window around zero that holds 99.5% of the in-range values of the plotted
    modules, rebinned to about 60 bars, so that small fine-tuning changes are visible.
    """
    layered = _layered(table)
    kinds = [k for k in LINEAR_KINDS if k in set(layered["kind"])]
    layers = sorted(int(x) for x in layered["layer"].unique())[:: max(every, 1)]
    shown = layered[layered["kind"].isin(kinds) & layered["layer"].isin(layers)]
    edges = np.asarray(table.attrs.get("bin_edges", []))
    first, last, group = _window(shown, len(edges) - 1)
    fig, axes = plt.subplots(
        max(len(layers), 1), max(len(kinds), 1), figsize=(1.5 * max(len(kinds), 1), 1.3 * max(len(layers), 1) + 0.6),
        squeeze=False,
    )
    for i, layer in enumerate(layers):
        for j, kind in enumerate(kinds):
            ax = axes[i, j]
            match = shown[(shown["layer"] == layer) & (shown["kind"] == kind)]
            if not match.empty and len(edges):
                row = match.iloc[0]
                counts = np.asarray(row["histogram"], dtype=float)[first:last].reshape(-1, group).sum(axis=1)
                lefts = edges[first:last:group]
                colour = "tab:red" if row["bimodal"] else "tab:blue"
                ax.bar(lefts, counts / max(counts.sum(), 1), width=edges[group] - edges[0], align="edge", color=colour)
            # A y-axis (share of elements per bar) on every panel, and tick labels a reader can read
            # at the width the report shows the figure (about 1000 px): 7 pt at 100 dpi is 10 px.
            ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(2))
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3))
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(kind, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=8)
    fig.suptitle(f"{_title(table)}\nrelative change r = (W_R - W_B)/|W_B| (central 99.5%); red = bimodal", fontsize=9)
    fig.supylabel("share of elements", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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


def plot_heatmap(table: pd.DataFrame, path: Path) -> Path:
    """Relative change, layer x kind, on a log colour scale."""
    layered = _layered(table)
    kinds = list(kinds_in(layered))
    grid = layered.pivot_table(index="layer", columns="kind", values="rel_norm", aggfunc="first").reindex(columns=kinds)
    values = grid.to_numpy(dtype=float)
    positive = values[np.isfinite(values) & (values > 0)]
    fig, ax = plt.subplots(figsize=(1 + 0.7 * max(len(kinds), 1), 1.5 + 0.25 * max(len(grid), 1)))
    if positive.size:
        shown = np.log10(np.where(values > 0, values, np.nan))
        image = ax.imshow(shown, aspect="auto", cmap="magma", interpolation="nearest")
        fig.colorbar(image, ax=ax, label="log10 relative change")
    ax.set_xticks(range(len(kinds)), kinds, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(grid)), [str(i) for i in grid.index], fontsize=7)
    ax.set_ylabel("layer")
    ax.set_title(_title(table), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _title(table: pd.DataFrame) -> str:
    """'tuned vs base' by the shortest path tails that tell them apart ('model vs model' says nothing)."""
    base, tuned = (Path(str(table.attrs.get(key, default))).parts for key, default in (("base", "B"), ("tuned", "R")))
    depth = 1
    while depth < max(len(base), len(tuned)) and base[-depth:] == tuned[-depth:]:
        depth += 1
    return f"{'/'.join(tuned[-depth:])} vs {'/'.join(base[-depth:])}"
