"""Reading a module part from a checkpoint: whole as a tensor, in Hugging Face orientation, or in
bounded blocks of stored bits (numpy, no torch: what the Delta stethoscope streams)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from sfn.io.checkpoint import Checkpoint
from sfn.registry.modules import ModulePart

if TYPE_CHECKING:
    import torch


def read_part(checkpoint: Checkpoint, part: ModulePart) -> torch.Tensor:
    """The part's tensor in [out, in] orientation and stored dtype (a copy only where it must be)."""
    import torch

    if part.transposed and len(part.shape) == 2:
        stored = checkpoint.read(part.tensor)
        columns = stored if part.rows is None else torch.cat([stored[:, a:b] for a, b in part.rows], dim=1)
        return columns.T.contiguous()
    if part.rows is None:
        return checkpoint.read(part.tensor)
    return torch.cat([checkpoint.read(part.tensor, slice(a, b)) for a, b in part.rows])


def iter_part_blocks(
    checkpoint: Checkpoint, part: ModulePart, max_elements: int, row_limit: int | None = None
) -> Iterator[np.ndarray]:
    """The part's elements in blocks of at most about `max_elements`, read one block at a time as
    stored bits (`Checkpoint.read_bits`; the tensor's `dtype_name` says how to decode them).

    Blocks come in an order fixed by the part's layout, so two checkpoints with the same layout yield
    matching blocks element for element (what element-wise statistics need). `row_limit` keeps only
    the first rows of an unfused tensor (comparing the shared rows of embeddings of different vocab sizes).
    """
    info = checkpoint.info(part.tensor)
    stored_rows = info.shape[0] if info.shape else 1
    row_elements = max(info.numel // max(stored_rows, 1), 1)
    rows_per_block = max(max_elements // row_elements, 1)
    if part.transposed and len(info.shape) == 2:
        # Stored [in, out]: walk stored rows, keeping this part's output columns.
        for start in range(0, stored_rows, rows_per_block):
            block = checkpoint.read_bits(part.tensor, slice(start, start + rows_per_block))
            yield block if part.rows is None else np.concatenate([block[:, a:b] for a, b in part.rows], axis=1)
        return
    if not info.shape:
        yield checkpoint.read_bits(part.tensor).reshape(1)
        return
    ranges = part.rows or ((0, stored_rows if row_limit is None else min(row_limit, stored_rows)),)
    for first, last in ranges:
        for start in range(first, last, rows_per_block):
            yield checkpoint.read_bits(part.tensor, slice(start, min(start + rows_per_block, last)))
