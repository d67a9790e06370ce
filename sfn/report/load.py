"""Reading a demo folder (what `sfn demo` wrote) back into tables for the report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sfn.errors import SfnError, SfnErrors
from sfn.report.layout import LAYOUT



@dataclass
class DemoData:
    folder: Path
    index: dict[str, Any]
    delta_table: pd.DataFrame
    delta_ranking: pd.DataFrame
    delta_figures: dict[str, Path]
    merge: pd.DataFrame
    merge_samples: pd.DataFrame
    destruction: pd.DataFrame
    freeze: pd.DataFrame | None = None
    freeze_losses: dict[str, pd.DataFrame] = field(default_factory=dict)
    delta_finding: str = ""  # summary.json's sentence on how the kinds changed (sparsity, rank, heads)
    map_table: pd.DataFrame | None = None  # map.csv (None in a folder from before the map stage)
    map_summary: dict[str, Any] = field(default_factory=dict)
    map_figures: dict[str, Path] = field(default_factory=dict)
    map_probe: str = "probe"  # the probe the report reads the map on: its probe file's name, as map.csv names it

    @property
    def pair(self) -> dict[str, Any]:
        return self.index["pair"]

    def map_cells(self) -> pd.DataFrame | None:
        """The map's rows on the report's probe (a map may score several: `sfn map --probe A --probe B`)."""
        if self.map_table is None or self.map_probe not in set(self.map_table["probe"]):
            return self.map_table
        return self.map_table[self.map_table["probe"] == self.map_probe]


def load_demo(folder: str | Path) -> DemoData:
    """Every table and figure of a demo folder; one error listing all missing files."""
    from sfn.stethoscopes.delta import summarize

    folder = Path(folder)
    index_path = folder / LAYOUT.index
    if not index_path.is_file():
        raise SfnError(f"{folder} holds no {LAYOUT.index}; pass the folder `sfn demo --out` (or sfn.run_demo) wrote")
    index = json.loads(index_path.read_text())
    missing = [f"{folder / name} is missing" for name in LAYOUT.needed(index) if not (folder / name).is_file()]
    if missing:
        raise SfnErrors(missing, f"{folder} is an incomplete demo folder (rerun `sfn demo --out {folder}`)")
    delta_table = pd.read_csv(folder / index["delta"]["table"])
    delta_table["layer"] = delta_table["layer"].astype("Int64")
    freeze, mapped = index.get("freeze"), index.get("map")
    summary_path = folder / index["delta"].get("summary", LAYOUT.delta_summary)
    finding = json.loads(summary_path.read_text()).get("finding", "") if summary_path.is_file() else ""
    return DemoData(
        folder=folder,
        index=index,
        delta_table=delta_table,
        delta_ranking=summarize(delta_table),
        delta_figures={name: folder / path for name, path in index["delta"]["figures"].items()},
        merge=pd.read_csv(folder / index["merge"]["table"], keep_default_na=False),
        merge_samples=pd.read_json(folder / index["merge"]["samples"], lines=True, dtype=False),
        destruction=pd.read_csv(folder / index["destruction"]["table"], keep_default_na=False),
        freeze=pd.read_csv(folder / freeze["table"]) if freeze else None,
        freeze_losses={preset: pd.read_csv(folder / path) for preset, path in freeze["losses"].items()} if freeze else {},
        delta_finding=finding,
        map_table=pd.read_csv(folder / mapped["table"], keep_default_na=False, na_values=[""]) if mapped else None,
        map_summary=json.loads((folder / mapped["summary"]).read_text()) if mapped else {},
        map_figures={name: folder / path for name, path in mapped["figures"].items()} if mapped else {},
        map_probe=Path(mapped["probe"]).stem if mapped else "probe",
    )
