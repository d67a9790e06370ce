"""The contract between the writers of a demo folder (`sfn demo`, the SmolLM2 study) and its reader
(`sfn report`): where each stage's files lie, and the demo.json entries that name them.

Paths are relative to the folder. demo.json holds `pair`, `settings`, `seconds`, optionally
`commands`, and one entry per stage built here (`freeze` is null when the stage was skipped).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DemoLayout:
    index: str = "demo.json"
    delta_dir: str = "delta"
    delta_table: str = "delta/delta.csv"
    delta_summary: str = "delta/summary.json"
    merge_dir: str = "merge"
    merge_table: str = "merge/merge.csv"
    merge_samples: str = "merge/samples.jsonl"
    map_dir: str = "map"
    map_table: str = "map/map.csv"
    map_summary: str = "map/summary.json"
    destruction_dir: str = "destruction"
    destruction_table: str = "destruction/destruction.csv"
    freeze_dir: str = "freeze"
    freeze_table: str = "freeze/compare.csv"

    def freeze_loss(self, preset: str) -> str:
        return f"{self.freeze_dir}/{preset}/loss.csv"

    def delta_entry(self, figures: dict[str, str]) -> dict[str, Any]:
        """`figures`: figure name -> path relative to the folder."""
        return {"figures": dict(figures), "table": self.delta_table, "summary": self.delta_summary}

    def merge_entry(self) -> dict[str, Any]:
        return {"table": self.merge_table, "samples": self.merge_samples}

    def map_entry(self, figures: dict[str, str], probe: str) -> dict[str, Any]:
        """`figures`: figure name -> path relative to the folder; `probe`: the probe file the map scored."""
        return {"table": self.map_table, "summary": self.map_summary, "figures": dict(figures), "probe": probe}

    def destruction_entry(self, layers: str, model: str | None = None) -> dict[str, Any]:
        """`model`: which model was destroyed when not R (the report's default)."""
        return {"table": self.destruction_table, "layers": layers, **({"model": model} if model else {})}

    def freeze_entry(self, presets: Iterable[str], figure: str | None) -> dict[str, Any]:
        return {"table": self.freeze_table, "losses": {preset: self.freeze_loss(preset) for preset in presets},
                "figure": figure}

    def needed(self, index: dict[str, Any]) -> list[str]:
        """Every data file the index names, for the reader to check before it reads any."""
        files = [index["delta"]["table"], *index["delta"]["figures"].values(), index["merge"]["table"],
                 index["merge"]["samples"], index["destruction"]["table"]]
        if index.get("map"):  # folders from before the map stage have none
            files += [index["map"]["table"], index["map"]["summary"], *index["map"]["figures"].values()]
        if index.get("freeze"):
            files += [index["freeze"]["table"], *index["freeze"]["losses"].values()]
        return files


LAYOUT = DemoLayout()
