"""Stored dtypes by name — sizes, safetensors codes, decoding to float32 — without importing torch.

A dtype is named as torch names it without the `torch.` prefix ("bfloat16", "float8_e4m3fn").
Readers that never need torch (the safetensors reader, the Delta stethoscope's kernel) work on a
tensor's stored bits: its bytes viewed as unsigned integers of the item's width, in its shape
(`Checkpoint.read_bits`). numpy has no bfloat16 or float8, so the bits plus the name say what a
tensor holds; `to_float32` decodes them. torch is imported only where a torch dtype or tensor is
asked for, where it has already been imported by whoever holds a tensor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: safetensors header code -> dtype name
SAFETENSORS_CODES: dict[str, str] = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}
#: bytes per element, by dtype name
ITEMSIZE: dict[str, int] = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int16": 2, "int8": 1,
    "uint64": 8, "uint32": 4, "uint16": 2, "uint8": 1, "bool": 1, "float8_e4m3fn": 1, "float8_e5m2": 1,
}
#: the unsigned integer type that holds one element's bits, by item size
BITS: dict[int, type] = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
# dtypes numpy holds natively: their bits are viewed as these and converted by numpy
_NUMPY: dict[str, type] = {
    "float64": np.float64, "float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32,
    "int16": np.int16, "int8": np.int8, "uint64": np.uint64, "uint32": np.uint32, "uint16": np.uint16,
    "uint8": np.uint8, "bool": np.bool_,
}


def dtype_name(dtype: "torch.dtype | str") -> str:
    """The name of a torch dtype ("bfloat16" for torch.bfloat16); a name is returned as it is."""
    return dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")


def itemsize(name: str) -> int:
    """Bytes per element of dtype `name`; one outside the table (a loaded model's complex buffer, say)
    is asked of torch, which made it."""
    return ITEMSIZE[name] if name in ITEMSIZE else torch_dtype(name).itemsize


def torch_dtype(name: str) -> "torch.dtype":
    """The torch dtype of a name (imports torch)."""
    import torch

    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"{name!r} names no torch dtype")
    return dtype


def tensor_bits(tensor: "torch.Tensor") -> np.ndarray:
    """A CPU tensor's bits as a numpy array (no copy for a contiguous tensor), in its shape."""
    import torch

    widths = {1: torch.uint8, 2: torch.uint16, 4: torch.uint32, 8: torch.uint64}
    if tensor.dtype.itemsize not in widths:
        raise ValueError(f"a {tensor.dtype} tensor has no bits view of 1, 2, 4 or 8 bytes an element")
    return tensor.detach().contiguous().view(widths[tensor.dtype.itemsize]).numpy()


def to_float32(bits: np.ndarray, name: str) -> np.ndarray:
    """Stored bits of dtype `name` decoded to float32 values, rounded as torch's `.to(torch.float32)` does."""
    if name == "bfloat16":  # the high half of a float32
        return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)
    if name in _NUMPY:
        return bits.view(_NUMPY[name]).astype(np.float32)
    import torch  # float8: numpy has no such type; decoding 1-byte values is torch's job

    return torch.from_numpy(np.ascontiguousarray(bits)).view(torch_dtype(name)).to(torch.float32).numpy()
