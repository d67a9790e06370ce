"""Reading and writing one module part inside its stored tensor - the one place that knows fused layouts.

A part is either a whole tensor or some output rows of a fused one (Phi-3 `qkv_proj`, GPT-NeoX
`query_key_value`); GPT-2's Conv1D stores weights [in, out], so there a part's output rows are stored
columns. Merge, destruction and plugins, on disk and in memory, all edit tensors through these functions.
"""

from __future__ import annotations

import zlib

import torch

from sfn.registry import ModulePart

PartKey = tuple[str, "int | None", str]


def part_key(part: ModulePart) -> PartKey:
    """What a part is, independent of how a checkpoint or a loaded model names its tensor."""
    return (part.kind, part.layer, part.param)


def describe_part(part: ModulePart) -> str:
    where = f" of layer {part.layer}" if part.layer is not None else ""
    return f"{part.kind} {part.param}{where} ({part.tensor})"


def _columns(part: ModulePart, stored: torch.Tensor) -> bool:
    return part.transposed and stored.dim() == 2


def part_indices(part: ModulePart, stored: torch.Tensor) -> list[tuple[slice, ...]]:
    """Index tuples selecting the part inside its stored tensor, in order of the part's output rows."""
    if part.rows is None:
        return [(slice(None),) * stored.dim()]
    if _columns(part, stored):
        return [(slice(None), slice(a, b)) for a, b in part.rows]
    return [(slice(a, b),) for a, b in part.rows]


def copy_part_(dst: torch.Tensor, src: torch.Tensor, part: ModulePart) -> None:
    """Copy the part from `src` into `dst`, both in the stored layout of `part.tensor` (dtype cast as needed)."""
    with torch.no_grad():
        for index in part_indices(part, dst):
            dst[index] = src[index]


def blend(base: torch.Tensor, donor: torch.Tensor, alpha: float) -> torch.Tensor:
    """W_B + alpha (W_R - W_B), computed in float32 for the caller to round once to its dtype.

    alpha 1 returns `donor` itself (today's transplant, bit for bit) and alpha 0 gives the base's values
    exactly; 0.5 is the midpoint, -1 subtracts R's change and 2 doubles it (task-vector arithmetic).
    """
    if alpha == 1:
        return donor
    base32 = base.to(torch.float32)
    return base32 + alpha * (donor.to(torch.float32) - base32)


def part_values(stored: torch.Tensor, part: ModulePart) -> torch.Tensor:
    """The part's values in Hugging Face orientation ([out, in]) as a new contiguous tensor."""
    blocks = [stored[index] for index in part_indices(part, stored)]
    if _columns(part, stored):
        blocks = [block.T for block in blocks]
    return torch.cat(blocks).contiguous() if len(blocks) > 1 else blocks[0].contiguous().clone()


def write_part_(dst: torch.Tensor, part: ModulePart, values: torch.Tensor) -> None:
    """Write `values` (Hugging Face orientation, `part.shape`) into the part's place in `dst`."""
    if tuple(values.shape) != tuple(part.shape):
        raise ValueError(f"{describe_part(part)} is {part.shape}, got values of shape {tuple(values.shape)}")
    columns = _columns(part, dst)
    start = 0
    with torch.no_grad():
        for index in part_indices(part, dst):
            rows = dst[index].shape[1 if columns else 0]
            block = values[start : start + rows]
            dst[index] = block.T if columns else block
            start += rows


def reinit_values(part: ModulePart, *, std: float, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """N(0, std) values for the part, the same bits on disk and in memory for the same seed.

    The generator is seeded from the seed and the part's identity (kind, layer, param), not from any
    tensor name, so the values do not depend on what else is selected or how the model names tensors.
    """
    identity = "/".join(str(x) for x in (seed, *part_key(part)))
    generator = torch.Generator().manual_seed(zlib.crc32(identity.encode()))
    values = torch.randn(part.shape, generator=generator, dtype=torch.float32)
    return (values * std).to(dtype)
