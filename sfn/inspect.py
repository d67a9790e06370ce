"""`sfn modules`: what a model's tensors are, and what a selector picks, before running anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sfn.io.sources import ModelSource, opened
from sfn.registry import Selector, module_map


@dataclass(repr=False)
class ModulesResult:
    """What `modules` found: `table` (a plain DataFrame, one row per module part), `summary` (model,
    model_type, num_layers, tied_embeddings, generic, selector, selected_parts, selected_tensors,
    selected_bytes) and `notes` (what could not be classified)."""

    table: pd.DataFrame
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"ModulesResult({self.summary['model']!r}, {len(self.table)} parts, {self.summary['selected_parts']} selected)"


def modules(model: ModelSource, select: str | None = None, *, layers: str | None = None, allow_pickle: bool = False) -> ModulesResult:
    """One row per module part (a fused tensor gives one row per kind it holds), plus unclassified tensors.

    `model` is a path, a hub id, a loaded model or a state dict. Columns of `.table`: tensor, kind
    (empty when unclassified), layer, param, shape (Hugging Face [out, in] orientation),
    stored_shape, dtype, numel, bytes, fused (the output rows of a fused tensor) and selected
    (whether `select`/`layers` match it; all True when neither is given).
    """
    selector = Selector.parse(select, layers)
    with opened(model, allow_pickle=allow_pickle) as checkpoint:
        mapped = module_map(checkpoint)
        chosen = set(id(p) for p in selector.select(mapped))
        infos = checkpoint.tensors()
        rows = []
        for part in mapped.parts:
            info = infos[part.tensor]
            rows.append(
                {
                    "tensor": part.tensor,
                    "kind": part.kind,
                    "layer": part.layer,
                    "param": part.param,
                    "shape": part.shape,
                    "stored_shape": info.shape,
                    "dtype": info.dtype_name,
                    "numel": part.numel,
                    "bytes": part.numel * info.itemsize,
                    "fused": _rows_text(part.rows),
                    "selected": id(part) in chosen,
                }
            )
        for name in mapped.unclassified:
            info = infos[name]
            rows.append(
                {
                    "tensor": name,
                    "kind": "",
                    "layer": None,
                    "param": "",
                    "shape": info.shape,
                    "stored_shape": info.shape,
                    "dtype": info.dtype_name,
                    "numel": info.numel,
                    "bytes": info.nbytes,
                    "fused": "",
                    "selected": False,
                }
            )
        table = pd.DataFrame(rows)
        if not table.empty:
            table["layer"] = table["layer"].astype("Int64")
        picked = table[table["selected"]] if not table.empty else table
        summary = {
            "model": checkpoint.source,
            "model_type": mapped.model_type,
            "num_layers": mapped.num_layers,
            "tied_embeddings": mapped.tied_embeddings,
            "generic": mapped.generic,
            "selector": str(selector),
            "selected_parts": len(picked),
            "selected_tensors": int(picked["tensor"].nunique()) if len(picked) else 0,
            "selected_bytes": int(picked["bytes"].sum()) if len(picked) else 0,
        }
        return ModulesResult(table, summary, _notes(mapped.model_type, mapped.generic, mapped.unclassified))


def _notes(model_type: str | None, generic: bool, unclassified: list[str]) -> list[str]:
    notes = []
    if generic:
        notes.append(f"architecture {model_type or 'unknown'!s} is not one sfn knows: tensors classified by common name patterns")
    if unclassified:
        notes.append(f"{len(unclassified)} tensors could not be classified (selectors ignore them): {', '.join(unclassified[:5])}"
                     + (", ..." if len(unclassified) > 5 else ""))
    return notes


def _rows_text(rows: tuple[tuple[int, int], ...] | None) -> str:
    if rows is None:
        return ""
    shown = ",".join(f"{a}:{b}" for a, b in rows[:4])
    return f"rows {shown}" + (f",... ({len(rows)} ranges)" if len(rows) > 4 else "")
