"""Per-kind summary and ranking of a delta table, and the files `sfn delta --out` writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from sfn import __version__
from sfn.io.guard import guard_output
from sfn.stethoscopes.delta.compute import DeltaResult, kinds_in


def summarize(result: DeltaResult | pd.DataFrame) -> pd.DataFrame:
    """One row per module kind, ranked by mean relative change across layers (rank 1 moved most).

    Takes what `delta` returns or its table (as read back from `delta.csv`, too).
    `first_in_layers` counts the layers in which the kind has the largest relative change of all
    kinds; `bimodal_layers` those in which its relative-change histogram is bimodal.
    """
    table = result.table if isinstance(result, DeltaResult) else result
    layered = table[table["layer"].notna()]
    leaders = layered.loc[layered.groupby("layer")["rel_norm"].idxmax()] if not layered.empty else layered
    first_counts = leaders["kind"].value_counts()
    rows = []
    for kind in kinds_in(table):
        of_kind = table[table["kind"] == kind]
        rows.append(
            {
                "kind": kind,
                "mean_rel_norm": float(of_kind["rel_norm"].mean()),
                "median_rel_norm": float(of_kind["rel_norm"].median()),
                "mean_abs_norm": float(of_kind["abs_norm"].mean()),
                "layers": int(of_kind["layer"].notna().sum()),
                "first_in_layers": int(first_counts.get(kind, 0)),
                "bimodal_layers": int(of_kind["bimodal"].sum()),
                "bimodal": bool(of_kind["bimodal"].mean() > 0.5),
            }
        )
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary
    summary = summary.sort_values("mean_rel_norm", ascending=False, kind="stable").reset_index(drop=True)
    summary.insert(0, "rank", range(1, len(summary) + 1))
    return summary


def ranking_text(summary: pd.DataFrame) -> str:
    """The ranking as an aligned plain-text table for the terminal."""
    if summary.empty:
        return "(no modules compared)"
    shown = pd.DataFrame(
        {
            "rank": summary["rank"],
            "kind": summary["kind"],
            "mean rel": summary["mean_rel_norm"].map("{:.3e}".format),
            "median rel": summary["median_rel_norm"].map("{:.3e}".format),
            "mean abs": summary["mean_abs_norm"].map("{:.3e}".format),
            "first in": [f"{f}/{n}" if n else "-" for f, n in zip(summary["first_in_layers"], summary["layers"])],
            "bimodal": [f"{b}/{max(n, 1)}" for b, n in zip(summary["bimodal_layers"], summary["layers"])],
        }
    )
    return shown.to_string(index=False)


def write_outputs(result: DeltaResult, out: str | Path, *, every: int = 5, plots: bool = True) -> dict[str, Path]:
    """Write delta.csv, histograms.npz, summary.json and (with `plots`) the figures; returns their paths.

    `out` may not be, lie inside or contain either model (`sfn.io.guard`)."""
    # A loaded model's source names it rather than a path; only paths on disk can be overwritten.
    models = [result.summary.get(key) for key in ("base", "tuned")]
    on_disk = [model for model in models if isinstance(model, (str, os.PathLike)) and Path(model).exists()]
    out = guard_output(out, inputs=on_disk, replace=False)
    out.mkdir(parents=True, exist_ok=True)
    table = result.table
    paths = {"csv": out / "delta.csv", "histograms": out / "histograms.npz", "summary": out / "summary.json"}
    table.drop(columns=["histogram"]).to_csv(paths["csv"], index=False)
    np.savez_compressed(
        paths["histograms"],
        counts=np.stack(table["histogram"].to_list()) if len(table) else np.zeros((0, result.summary["bins"])),
        layer=table["layer"].fillna(-1).to_numpy(dtype=np.int64),
        kind=table["kind"].to_numpy(dtype=str),
        bin_edges=result.bin_edges,
    )
    ranking = summarize(table)
    document = {
        "sfn_version": __version__,
        **{k: v for k, v in result.summary.items() if k not in ("missing_in_base", "missing_in_tuned")},
        "notes": result.notes,
        "missing_in_base": result.summary["missing_in_base"],
        "missing_in_tuned": result.summary["missing_in_tuned"],
        "kinds": {row["kind"]: {k: v for k, v in row.items() if k != "kind"} for row in ranking.to_dict("records")},
    }
    paths["summary"].write_text(json.dumps(document, indent=2, default=_json_default) + "\n")
    if plots:
        from sfn.plotting import save_figure
        from sfn.stethoscopes.delta.plots import delta_figures

        for name, figure in delta_figures(_with_figure_attrs(result), every=every).items():
            # the key of histograms.png says _png: "histograms" is histograms.npz
            key = "histograms_png" if name == "histograms.png" else Path(name).stem
            paths[key] = save_figure(figure, out / name)
    return paths


def _with_figure_attrs(result: DeltaResult) -> pd.DataFrame:
    # The plot functions read the bin edges and the model names from `attrs`; a shallow copy carries
    # them there so that `result.table` stays a plain DataFrame.
    table = result.table.copy(deep=False)
    table.attrs.update(base=result.summary["base"], tuned=result.summary["tuned"], bin_edges=result.bin_edges.tolist())
    return table


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
