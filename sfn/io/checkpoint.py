"""The lazy checkpoint interface every reader implements.

A `Checkpoint` knows tensor names, shapes, dtypes and the model config without reading tensor data;
`read` returns one tensor (or one block of its leading-dimension rows) at a time, `read_bits` the same
as stored bits in a numpy array (no torch needed: the Delta stethoscope's path), and `release` lets
the reader drop the pages it mapped so that memory does not grow with model size.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sfn.io.dtypes import dtype_name, itemsize, tensor_bits, torch_dtype

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TensorInfo:
    """A tensor's name, shape and dtype, stored by name ("bfloat16"; a torch dtype given is kept by its name)."""

    name: str
    shape: tuple[int, ...]
    dtype_name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype_name", dtype_name(self.dtype_name))

    @property
    def dtype(self) -> "torch.dtype":
        """The torch dtype (imports torch)."""
        return torch_dtype(self.dtype_name)

    @property
    def itemsize(self) -> int:
        return itemsize(self.dtype_name)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize


class Checkpoint(ABC):
    """A model's tensors and config, read lazily. Use as a context manager or call `close()`."""

    #: what the user passed (path or hub id), for messages
    source: str
    #: the Hugging Face config as a plain dict ({} when the checkpoint has none)
    config: dict[str, Any]

    @abstractmethod
    def tensors(self) -> dict[str, TensorInfo]:
        """All tensors in storage order, without reading data."""

    @abstractmethod
    def read(self, name: str, rows: slice | None = None) -> "torch.Tensor":
        """Tensor `name` (or rows `rows` of its first dimension) in its stored dtype.

        The result may share memory with a read-only mapping: copy before writing to it.
        """

    def read_bits(self, name: str, rows: slice | None = None) -> np.ndarray:
        """What `read` returns, as its stored bits: a numpy array of unsigned integers of the item's
        width (uint16 for bfloat16), in the tensor's shape; `info(name).dtype_name` says how to decode
        them (`sfn.io.dtypes.to_float32`). Readers that map files override this to skip torch."""
        return tensor_bits(self.read(name, rows))

    def release(self, name: str) -> None:
        """Drop cached/mapped pages of `name`; called after its last use."""

    def prefetch(self, name: str) -> None:
        """Hint that `name` is read next, so I/O can overlap with computation."""

    def close(self) -> None:
        """Release files and mappings."""

    @property
    def model_type(self) -> str | None:
        value = self.config.get("model_type")
        return str(value) if value else None

    def info(self, name: str) -> TensorInfo:
        try:
            return self.tensors()[name]
        except KeyError:
            raise KeyError(f"{self.source} has no tensor {name!r}") from None

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, {len(self.tensors())} tensors)"
