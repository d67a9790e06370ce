"""The lazy checkpoint interface every reader implements.

A `Checkpoint` knows tensor names, shapes, dtypes and the model config without reading tensor data;
`read` returns one tensor (or one block of its leading-dimension rows) at a time, and `release` lets
the reader drop the pages it mapped so that memory does not grow with model size.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


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
    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        """Tensor `name` (or rows `rows` of its first dimension) in its stored dtype.

        The result may share memory with a read-only mapping: copy before writing to it.
        """

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
