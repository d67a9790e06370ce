"""What a map concludes and writes: Delta's change per cell next to the map ("changed" vs "matters"),
the top cells, map.csv, summary.json and the figures."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sfn.experiments.cells import DESTRUCTION_MODES
from sfn.io.full_disk import staged_into
from sfn.io.guard import guard_output
from sfn.plotting import new_figure, save_figure

TOP = 5


def score_column(mode: str, on: str) -> str:
    """The column a cell of `mode` is ranked by: what a transplant recovers, or what a destruction costs."""
    if mode in DESTRUCTION_MODES:
        return "kl_to_base" if on == "base" else "kl_to_tuned"
    return "recovered_share"


def _window_layers(layers: str, num_layers: int) -> list[int]:
    if layers == "all":
        return list(range(num_layers))
    first, _, last = layers.partition("-")
    return list(range(int(first), int(last or first) + 1))


def delta_change(table: pd.DataFrame, delta_table: pd.DataFrame, num_layers: int) -> pd.Series:
    """Per map row, Delta's mean relative change of the cell's tensors (NaN for removals and alpha curves)."""
    by_kind = {kind: rows for kind, rows in delta_table.groupby("kind")}
    values = []
    for row in table.itertuples():
        rows = by_kind.get(row.kind)
        if row.mode in ("remove", "alpha") or rows is None:
            values.append(np.nan)
        elif rows["layer"].isna().all():
            values.append(float(rows["rel_norm"].mean()))
        else:
            layers = set(_window_layers(row.layers, num_layers))
            values.append(float(rows[rows["layer"].isin(layers)]["rel_norm"].mean()))
    return pd.Series(values, index=table.index, dtype=float)


def conclusions(table: pd.DataFrame, on: str) -> dict[str, Any]:
    """The top window cells per mode and probe, and the Spearman correlation of Delta's change with the score."""
    top: dict[str, list[dict[str, Any]]] = {}
    correlation: dict[str, float | None] = {}
    cells = table[(table["layers"] != "all") & (table["mode"] != "alpha")]
    for (mode, probe), rows in cells.groupby(["mode", "probe"], sort=False):
        column = score_column(mode, on)
        ranked = rows.sort_values(column, ascending=False, kind="stable").head(TOP)
        top[f"{mode}/{probe}"] = ranked[["kind", "layers", column]].to_dict("records")
        paired = rows[["delta_rel_change", column]].dropna()
        rho = paired["delta_rel_change"].rank().corr(paired[column].rank()) if len(paired) > 2 else np.nan
        correlation[f"{mode}/{probe}"] = None if not np.isfinite(rho) else float(rho)
    return {"top_cells": top, "changed_vs_matters": correlation}


def map_figures(table: pd.DataFrame, on: str) -> dict[str, Figure]:
    """One layer x kind heatmap per mode and probe (map_MODE_PROBE.png), and the alpha curve if any."""
    figures = {}
    cells = table[(table["layers"] != "all") & (table["mode"] != "alpha")]
    for (mode, probe), rows in cells.groupby(["mode", "probe"], sort=False):
        column = score_column(mode, on)
        kinds = list(dict.fromkeys(rows["kind"]))
        windows = list(dict.fromkeys(rows["layers"]))
        grid = rows.pivot_table(index="kind", columns="layers", values=column, aggfunc="first").reindex(index=kinds, columns=windows)
        figure = new_figure(3.6 + 0.28 * max(len(windows), 4), 1.6 + 0.32 * max(len(kinds), 2), layout="constrained")
        axis = figure.subplots()
        image = axis.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="viridis", interpolation="nearest")
        label = "share of KL(R||B) recovered" if column == "recovered_share" else f"{column} (nats/token)"
        figure.colorbar(image, ax=axis, label=label)
        step = max(1, len(windows) // 16)
        axis.set_xticks(range(0, len(windows), step), windows[::step], fontsize=9)
        axis.set_yticks(range(len(kinds)), kinds, fontsize=9)
        axis.set_xlabel("layers")
        axis.set_title(f"{mode} map, probe {probe}", fontsize=10)
        figures[f"map_{mode}_{probe}.png"] = figure
    curve = table[table["mode"] == "alpha"]
    if not curve.empty:
        figure = new_figure(5.5, 3.4, layout="constrained")
        axis = figure.subplots()
        for probe, rows in curve.groupby("probe", sort=False):
            axis.plot(rows["alpha"], rows["kl_to_tuned"], marker="o", label=f"KL(R || variant), {probe}")
            axis.plot(rows["alpha"], rows["kl_to_base"], marker="s", linestyle="--", label=f"KL(B || variant), {probe}")
        axis.set_xlabel(f"alpha: {curve['kind'].iloc[0]} = W_B + alpha (W_R - W_B)")
        axis.set_ylabel("nats per answer token")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        figures["alpha_curve.png"] = figure
    return figures


def write_map(result: Any, out: str | os.PathLike, *, inputs: list[Any] = (), plots: bool = True) -> dict[str, Path]:
    """Write map.csv, summary.json and (with `plots`) the figures into `out`, and with an accuracy check
    accuracy.csv and each evaluated model's samples.jsonl and summary.json (the eval runner's files) in
    accuracy/CELL/; returns the paths of the files at the top.

    Written into a hidden folder and renamed into place, so an earlier map there stays whole on failure."""
    on_disk = [source for source in inputs if isinstance(source, (str, os.PathLike)) and Path(source).exists()]
    out = guard_output(out, inputs=on_disk, replace=False)
    names = ["map.csv", "summary.json"]
    for folder, run in result.accuracy_runs.items():  # before accuracy.csv, which names them
        _write_eval_run(run, out / "accuracy" / folder)
    with staged_into(out, "map") as staging:
        result.table.to_csv(staging / "map.csv", index=False)
        if result.accuracy is not None:
            result.accuracy.to_csv(staging / "accuracy.csv", index=False)
            names.append("accuracy.csv")
        document = {**result.summary, "notes": result.notes}
        (staging / "summary.json").write_text(json.dumps(_strict(document), indent=2, allow_nan=False) + "\n")
        if plots:
            for name, figure in map_figures(result.table, result.summary["on"]).items():
                save_figure(figure, staging / name)
                names.append(name)
    return {name: out / name for name in names}


def _write_eval_run(run: Any, folder: Path) -> None:
    """An `EvalResult` as the eval runner writes its run: one JSON line per sample, and the summary."""
    from sfn.eval.run import SAMPLES_FILE, SUMMARY_FILE

    with staged_into(folder, "eval") as staging:
        lines = [json.dumps(_strict(row), ensure_ascii=False, allow_nan=False) for row in run.samples.to_dict("records")]
        (staging / SAMPLES_FILE).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        (staging / SUMMARY_FILE).write_text(json.dumps(_strict(run.summary), indent=2, allow_nan=False) + "\n")


def _strict(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return None if value is pd.NA else value
