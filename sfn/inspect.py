"""`sfn modules`: what a model's tensors are, and what a selector picks, before running anything."""

from __future__ import annotations

import os

import pandas as pd

from sfn.io import Checkpoint, open_checkpoint
from sfn.registry import Selector, module_map


def modules(
    model: str | os.PathLike | Checkpoint, select: str | None = None, *, layers: str | None = None, allow_pickle: bool = False
) -> pd.DataFrame:
    """One row per module part (a fused tensor gives one row per kind it holds), plus unclassified tensors.

    Columns: tensor, kind (empty when unclassified), layer, param, shape (Hugging Face [out, in]
    orientation), stored_shape, dtype, numel, bytes, fused (the output rows of a fused tensor) and
    selected (whether `select`/`layers` match it; all True when neither is given).
    """
    checkpoint = model if isinstance(model, Checkpoint) else open_checkpoint(model, allow_pickle=allow_pickle)
    try:
        mapped = module_map(checkpoint)
        chosen = set(id(p) for p in Selector.parse(select, layers).select(mapped))
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
                    "dtype": str(info.dtype).removeprefix("torch."),
                    "numel": part.numel,
                    "bytes": part.numel * info.dtype.itemsize,
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
                    "dtype": str(info.dtype).removeprefix("torch."),
                    "numel": info.numel,
                    "bytes": info.nbytes,
                    "fused": "",
                    "selected": False,
                }
            )
        table = pd.DataFrame(rows)
        if not table.empty:
            table["layer"] = table["layer"].astype("Int64")
        table.attrs.update(model=checkpoint.source, model_type=mapped.model_type, num_layers=mapped.num_layers,
                           tied_embeddings=mapped.tied_embeddings, generic=mapped.generic)
        return table
    finally:
        if checkpoint is not model:
            checkpoint.close()


def _rows_text(rows: tuple[tuple[int, int], ...] | None) -> str:
    if rows is None:
        return ""
    shown = ",".join(f"{a}:{b}" for a, b in rows[:4])
    return f"rows {shown}" + (f",... ({len(rows)} ranges)" if len(rows) > 4 else "")
