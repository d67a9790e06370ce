"""The report's own figures (the Destruction level map, the Freeze loss curves, Merge levels) and
embedding any PNG as a data URI so the page fetches nothing. The `plot_*` functions return
`matplotlib.figure.Figure` objects; `build_sections` saves them."""

from __future__ import annotations

import base64
from pathlib import Path

import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from sfn.plotting import new_figure

LEVEL_COLOURS = {"I": "#d73027", "II": "#fc8d59", "III": "#91bfdb", "IV": "#1a9850"}
LEVEL_VALUES = {"I": 1, "II": 2, "III": 3, "IV": 4}


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def typical_level(counts: dict[str, int]) -> str:
    """The median level of a cell's outputs (ties towards the lower level: the cautious reading)."""
    ordered = [level for level in LEVEL_VALUES for _ in range(counts.get(level, 0))]
    return ordered[(len(ordered) - 1) // 2] if ordered else "I"


def plot_level_map(levels: pd.DataFrame, layers: str) -> Figure:
    """Module kind (rows) x destruction condition (columns: method, or method and layer range),
    coloured by the typical level, with counts."""
    kinds = list(dict.fromkeys(levels["kind"]))
    conditions = list(dict.fromkeys(levels["condition"]))
    figure = new_figure(1.9 * len(conditions) + 2.2, 0.5 * len(kinds) + 1.4)
    axis = figure.subplots()
    grid = [[float("nan")] * len(conditions) for _ in kinds]  # a kind a condition does not destroy stays blank
    for _, row in levels.iterrows():
        counts = {level: int(row[f"level_{level}"]) for level in LEVEL_VALUES}
        i, j = kinds.index(row["kind"]), conditions.index(row["condition"])
        grid[i][j] = LEVEL_VALUES[typical_level(counts)]
        label = " ".join(f"{level}:{count}" for level, count in counts.items() if count)
        axis.text(j, i, label, ha="center", va="center", fontsize=8, color="black")
    colours = ListedColormap(list(LEVEL_COLOURS.values())).with_extremes(bad="white")
    axis.imshow(grid, cmap=colours, vmin=0.5, vmax=4.5, aspect="auto")
    axis.set_xticks(range(len(conditions)), conditions)
    axis.set_yticks(range(len(kinds)), kinds)
    axis.set_title(f"Destruction of layers {layers}: typical output level", fontsize=10)
    handles = [Rectangle((0, 0), 1, 1, color=colour) for colour in LEVEL_COLOURS.values()]
    axis.legend(handles, [f"level {level}" for level in LEVEL_COLOURS], loc="upper left", bbox_to_anchor=(1.02, 1),
                fontsize=8, frameon=False)
    figure.tight_layout()
    return figure


def plot_merge_levels(merge: pd.DataFrame) -> Figure:
    """Stacked bars: how each Merge variant's outputs split over levels I-IV."""
    figure = new_figure(7, 0.45 * len(merge) + 1.2)
    axis = figure.subplots()
    left = [0.0] * len(merge)
    for level, colour in LEVEL_COLOURS.items():
        values = merge[f"level_{level}"].astype(float).tolist()
        axis.barh(merge["variant"], values, left=left, color=colour, label=f"level {level}")
        left = [a + b for a, b in zip(left, values)]
    axis.invert_yaxis()
    axis.set_xlabel("outputs")
    axis.legend(ncol=4, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    figure.tight_layout()
    return figure


def plot_losses(losses: dict[str, pd.DataFrame]) -> Figure:
    """Freeze training loss per preset, on shared axes: linear, in the colours of freeze/loss.png."""
    from sfn.stethoscopes.freeze.presets import preset_colours

    figure = new_figure(7, 3.8)
    axis = figure.subplots()
    colours = preset_colours(list(losses))
    for preset, frame in losses.items():
        axis.plot(frame["step"], frame["loss"], label=preset, linewidth=1.3, color=colours[preset])
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("training loss (response tokens)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
