"""Delta: how far each module of the tuned model moved from the base (figures and ranking)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sfn.demo.pair import DemoPair


@dataclass
class DeltaStage:
    table: pd.DataFrame  # one row per (layer, kind), without the histograms
    ranking: pd.DataFrame  # `sfn.stethoscopes.delta.summarize`: one row per kind, rank 1 moved most
    figures: dict[str, Path]


def delta_every(num_layers: int) -> int:
    """Small models get a histogram panel for every layer; large ones every fifth."""
    return 1 if num_layers <= 12 else 5


def run_delta(pair: DemoPair, out: Path) -> DeltaStage:
    """`sfn delta` on the pair, written to `out` (delta.csv, heads.csv, summary.json, norms/histograms/heatmap/heads.png)."""
    from sfn.stethoscopes.delta import delta, summarize, write_outputs

    result = delta(str(pair.base_source), str(pair.tuned_source), progress=False)  # the demo draws its own bar
    paths = write_outputs(result, out, every=delta_every(pair.num_layers))
    figures = {name: paths[key] for name, key in (("norms", "norms"), ("histograms", "histograms_png"), ("heatmap", "heatmap"),
                                                  ("heads", "heads_png")) if key in paths}
    return DeltaStage(result.table.drop(columns=["histogram", "clamped_histogram"], errors="ignore"), summarize(result), figures)
