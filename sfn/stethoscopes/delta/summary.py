"""Per-kind summary and ranking of a delta table, and the files `sfn delta --out` writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from sfn import __version__
from sfn.io.full_disk import staged_into
from sfn.io.guard import guard_output
from sfn.stethoscopes.delta.compute import DeltaResult, kinds_in
from sfn.stethoscopes.delta.findings import clamp_notes, o_heads, shape_sentence
from sfn.stethoscopes.delta.columns import SPECTRAL_COLUMNS


def summarize(result: DeltaResult | pd.DataFrame) -> pd.DataFrame:
    """One row per module kind, ranked by mean relative change across layers (rank 1 moved most).

    Takes what `delta` returns or its table (as read back from `delta.csv`, too).
    `first_in_layers` counts the layers in which the kind has the largest relative change of all
    kinds; `bimodal_layers` those in which its relative-change histogram is bimodal.
    """
    table = result.table if isinstance(result, DeltaResult) else result
    layered = table[table["layer"].notna() & table["rel_norm"].notna()]  # a zero base has no relative change
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
                **_shape_columns(of_kind),
            }
        )
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary
    summary = summary.sort_values("mean_rel_norm", ascending=False, kind="stable").reset_index(drop=True)
    summary.insert(0, "rank", range(1, len(summary) + 1))
    return summary


def _shape_columns(of_kind: pd.DataFrame) -> dict[str, float | int]:
    """How the kind changed (medians over its rows), from the columns the table has."""
    found: dict[str, float | int] = {}
    for column in ("changed_share", "moved_share", "edge_share", *SPECTRAL_COLUMNS):
        if column in of_kind:
            found[f"median_{column}"] = float(of_kind[column].median())
    if "clamp_bimodal" in of_kind:
        found["clamp_bimodal_layers"] = int(of_kind["clamp_bimodal"].astype(bool).sum())
    if "nonfinite" in of_kind:
        found["nonfinite"] = int(of_kind["nonfinite"].sum())
    return found


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


def write_outputs(
    result: DeltaResult, out: str | Path, *, every: int = 5, plots: bool = True, paper_clamp: bool = False
) -> dict[str, Path]:
    """Write delta.csv, heads.csv, histograms.npz, summary.json and (with `plots`) the figures (with
    `paper_clamp` also histograms_clamped.png: the paper's clamped histograms next to sfn's); returns their paths.

    `out` may not be, lie inside or contain either model (`sfn.io.guard`)."""
    # A loaded model's source names it rather than a path; only paths on disk can be overwritten.
    models = [result.summary.get(key) for key in ("base", "tuned")]
    on_disk = [model for model in models if isinstance(model, (str, os.PathLike)) and Path(model).exists()]
    out = guard_output(out, inputs=on_disk, replace=False)
    with staged_into(out, "delta") as staging:
        staged = _write_files(result, staging, every=every, plots=plots, paper_clamp=paper_clamp)
    return {key: out / path.name for key, path in staged.items()}


def _write_files(result: DeltaResult, directory: Path, *, every: int, plots: bool, paper_clamp: bool) -> dict[str, Path]:
    table, heads = result.table, result.heads
    paths = {"csv": directory / "delta.csv", "heads": directory / "heads.csv", "histograms": directory / "histograms.npz",
             "summary": directory / "summary.json"}
    table.drop(columns=["histogram", "clamped_histogram"], errors="ignore").to_csv(paths["csv"], index=False)
    heads.to_csv(paths["heads"], index=False)
    empty = np.zeros((0, result.summary["bins"]))
    np.savez_compressed(
        paths["histograms"],
        counts=np.stack(table["histogram"].to_list()) if len(table) else empty,
        clamped_counts=np.stack(table["clamped_histogram"].to_list()) if len(table) and "clamped_histogram" in table else empty,
        layer=table["layer"].fillna(-1).to_numpy(dtype=np.int64),
        kind=table["kind"].to_numpy(dtype=str),
        bin_edges=result.bin_edges,
    )
    ranking = summarize(table)
    document = {
        "sfn_version": __version__,
        **{k: v for k, v in result.summary.items() if k not in ("missing_in_base", "missing_in_tuned")},
        "finding": shape_sentence(ranking, heads),
        "notes": [*result.notes, *clamp_notes(ranking)],
        "missing_in_base": result.summary["missing_in_base"],
        "missing_in_tuned": result.summary["missing_in_tuned"],
        "kinds": {row["kind"]: {k: v for k, v in row.items() if k != "kind"} for row in ranking.to_dict("records")},
        "o_heads": o_heads(heads).to_dict("records"),
    }
    # strict JSON: NaN and infinities (a zero base, non-finite weights) are written as null
    paths["summary"].write_text(json.dumps(_finite(document), indent=2, default=_json_default, allow_nan=False) + "\n")
    if plots:
        from sfn.plotting import save_figure
        from sfn.stethoscopes.delta.plots import delta_figures, figure_table
        from sfn.stethoscopes.delta.plots_heads import plot_clamped_histograms, plot_heads

        for name, figure in delta_figures(result, every=every).items():
            # the key of histograms.png says _png: "histograms" is histograms.npz
            key = "histograms_png" if name == "histograms.png" else Path(name).stem
            paths[key] = save_figure(figure, directory / name)
        if not heads.empty:
            paths["heads_png"] = plot_heads(heads, directory / "heads.png", title=str(result.summary.get("tuned", "")))
        if paper_clamp:
            paths["clamped_png"] = plot_clamped_histograms(figure_table(result), directory / "histograms_clamped.png", every=every)
    return paths


def _finite(value: object) -> object:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if value is pd.NA:
        return None
    return value


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
