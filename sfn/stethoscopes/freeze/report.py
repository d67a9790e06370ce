"""What a Freeze run leaves behind: metrics.json, loss.csv, loss.png, and the Table-2-style comparison."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from sfn.plotting import new_figure, save_figure

METRICS_FILE = "metrics.json"
LOSS_FILE = "loss.csv"
LOSS_PLOT = "loss.png"
COMPARE_COLUMNS = {
    "train": "preset",
    "trainable_parameters": "trainable params",
    "trainable_share": "share",
    "steps_per_second": "steps/s",
    "tokens_per_second": "tokens/s",
    "peak_memory_bytes": "peak memory",
    "final_train_loss": "final train loss",
    "heldout_loss": "held-out loss",
    "heldout_accuracy": "held-out accuracy",
}


def loss_frame(log_history: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per logged optimizer step: step, epoch, loss, learning rate, gradient norm."""
    rows = [
        {
            "step": entry["step"],
            "epoch": entry.get("epoch"),
            "loss": entry["loss"],
            "learning_rate": entry.get("learning_rate"),
            "grad_norm": entry.get("grad_norm"),
        }
        for entry in log_history
        if "loss" in entry and "step" in entry
    ]
    return pd.DataFrame(rows, columns=["step", "epoch", "loss", "learning_rate", "grad_norm"])


def plot_loss(curves: dict[str, pd.DataFrame], title: str) -> Figure:
    """Training loss per optimizer step, one line per run, each preset in its fixed colour."""
    from sfn.stethoscopes.freeze.presets import preset_colours

    figure = new_figure(7, 4)
    axis = figure.subplots()
    colours = preset_colours(list(curves))
    for label, frame in curves.items():
        axis.plot(frame["step"], frame["loss"], label=label, linewidth=1.2, color=colours[label])
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("training loss (response tokens)")
    axis.set_title(title)
    if len(curves) > 1:
        axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def write_run_report(out_dir: Path, loss: pd.DataFrame, metrics: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=str))
    loss.to_csv(out_dir / LOSS_FILE, index=False)
    if len(loss):
        save_figure(plot_loss({metrics["train"]: loss}, f"sfn freeze: {metrics['train']}"), out_dir / LOSS_PLOT, dpi=120)


def finished_runs(folder: Path) -> dict[str, pd.DataFrame]:
    """Run folder name -> loss curve, for every finished or interrupted run directly inside `folder`."""
    runs = {}
    for run in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        if (run / METRICS_FILE).is_file() and (run / LOSS_FILE).is_file():
            runs[run.name] = pd.read_csv(run / LOSS_FILE)
    return runs


def write_overlay(folder: Path) -> Path | None:
    """When several runs share `folder`, plot their loss curves together in folder/loss.png."""
    curves = {name: loss for name, loss in finished_runs(folder).items() if len(loss)}
    if len(curves) < 2:
        return None
    return save_figure(plot_loss(curves, "sfn freeze: training loss by trainable modules"), folder / LOSS_PLOT, dpi=120)


def compare_table(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """The Table-2-style comparison: one row per run, speed relative to the first full (`all`) run."""
    rows = []
    for metrics in runs:
        score = metrics.get("heldout_score") or {}
        rows.append({**{key: metrics.get(key) for key in COMPARE_COLUMNS}, "heldout_accuracy": score.get("accuracy")})
    table = pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))
    reference = table[table["train"] == "all"]["steps_per_second"]
    if len(reference) and reference.iloc[0]:
        table["speed vs all"] = table["steps_per_second"] / reference.iloc[0]
    return table.rename(columns=COMPARE_COLUMNS)


def format_table(table: pd.DataFrame) -> str:
    """A Markdown table with readable numbers (parameters in millions, memory in MiB)."""

    def cell(column: str, value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if column == "trainable params":
            return f"{value / 1e6:.2f} M"
        if column == "share":
            return f"{100 * value:.1f}%"
        if column == "peak memory":
            return f"{value / 2**20:.0f} MiB"
        if column == "speed vs all":
            return f"{value:.2f}x"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(cell(column, row[column]) for column in table.columns) + " |")
    return "\n".join(lines)
