"""The Delta figures: built as Figures (no pyplot), one artist per histogram panel, saved by write_outputs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.patches import StepPatch

from sfn.stethoscopes.delta import delta, write_outputs
from sfn.stethoscopes.delta.plots import delta_figures, plot_histograms


@pytest.fixture(scope="module")
def table(tiny_model_dir, tuned_dir):
    def move_o(name: str, tensor: torch.Tensor) -> torch.Tensor | None:
        return tensor + 0.1 * tensor.abs() if "o_proj" in name else None  # r = +0.1 for every element

    base = tiny_model_dir("llama")
    return delta(str(base), str(tuned_dir("llama", "o-plus-10-percent", move_o)))


def test_figures_are_figures_outside_pyplot(table) -> None:
    open_before = plt.get_fignums()
    figures = delta_figures(table, every=1)
    assert set(figures) == {"norms.png", "histograms.png", "heatmap.png"}
    assert all(isinstance(figure, Figure) for figure in figures.values())
    assert plt.get_fignums() == open_before  # nothing registered with pyplot, nothing to close


def test_histogram_panels_are_one_stairs_each(table) -> None:
    figure = plot_histograms(table, every=1)
    layers = sorted(int(x) for x in table.table["layer"].dropna().unique())
    kinds = [kind for kind in ("q", "k", "v", "o", "gate", "up", "down") if kind in set(table.table["kind"])]
    (axis,) = figure.axes  # every panel in one axes: per-panel axes cost seconds on a 24-layer model
    stairs = [artist for artist in axis.get_children() if isinstance(artist, StepPatch)]
    assert len(stairs) == len(layers) * len(kinds) and not [p for p in axis.patches if not isinstance(p, StepPatch)]
    for patch in stairs:
        data = patch.get_data()
        assert len(data.edges) == len(data.values) + 1 and data.values.sum() == pytest.approx(1.0)
    # o_proj moved by exactly +10%: its whole mass sits in the bar holding r = 0.1 (panel order: layer, then kind)
    data = stairs[kinds.index("o")].get_data()
    peak = int(np.argmax(data.values))
    assert data.values[peak] == pytest.approx(1.0) and data.edges[peak] <= 0.1 < data.edges[peak + 1]


def test_write_outputs_saves_every_figure(table, tmp_path) -> None:
    paths = write_outputs(table, tmp_path, every=1)
    for key, name in (("norms", "norms.png"), ("histograms_png", "histograms.png"), ("heatmap", "heatmap.png")):
        assert paths[key] == tmp_path / name and paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not write_outputs(table, tmp_path / "bare", plots=False).keys() & {"norms", "heatmap"}


@pytest.mark.parametrize(("o_layers", "shared"), [([0, 1], True), ([1], False)])
def test_heads_figure_shares_the_layer_axis_only_when_every_kind_has_the_same_layers(o_layers, shared, tmp_path) -> None:
    import pandas as pd

    from sfn.stethoscopes.delta.plots_heads import heads_figure, plot_heads

    rows = [{"layer": layer, "kind": kind, "head": head, "share": 0.5}
            for kind in ("q", "o") for layer in ([0, 1] if kind == "q" else o_layers) for head in range(2)]
    heads = pd.DataFrame(rows)
    q_axes, o_axes = heads_figure(heads).axes[:2]
    assert q_axes.get_shared_y_axes().joined(q_axes, o_axes) == shared
    labelled = [t.get_text() for t in o_axes.get_yticklabels() if t.get_visible() and t.get_text()]
    assert labelled == ([] if shared else ["1"])  # o's own layer, where its rows are not q's
    assert plot_heads(heads, tmp_path / "heads.png").stat().st_size > 0
