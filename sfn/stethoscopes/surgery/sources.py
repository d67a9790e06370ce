"""Models given as paths, open checkpoints or loaded `transformers` models, all read as a `Checkpoint`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Union

import torch

from sfn.io import Checkpoint, TensorInfo, open_checkpoint
from sfn.io.safetensors_reader import SafetensorsCheckpoint

ModelSource = Union[str, os.PathLike, Checkpoint, torch.nn.Module]


class ModelTensors(Checkpoint):
    """A loaded model's parameters behind the `Checkpoint` interface; reads are views, not copies."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.source = str(getattr(model, "name_or_path", "") or type(model).__name__)
        self.config: dict[str, Any] = model.config.to_dict() if hasattr(model, "config") else {}
        self.parameters = dict(model.named_parameters())
        self._infos = {name: TensorInfo(name, tuple(p.shape), p.dtype) for name, p in self.parameters.items()}

    def tensors(self) -> dict[str, TensorInfo]:
        return self._infos

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        tensor = self.parameters[name].detach()
        return tensor if rows is None else tensor[rows]


@contextmanager
def opened(source: ModelSource, *, allow_pickle: bool = False) -> Iterator[Checkpoint]:
    """`source` as a Checkpoint; closes it afterwards only if it was opened here."""
    if isinstance(source, Checkpoint):
        yield source
    elif isinstance(source, torch.nn.Module):
        yield ModelTensors(source)
    else:
        checkpoint = open_checkpoint(source, allow_pickle=allow_pickle)
        try:
            yield checkpoint
        finally:
            checkpoint.close()


def checkpoint_dir(checkpoint: Checkpoint) -> Path | None:
    """The directory that holds the checkpoint's config and tokenizer files, if it has one."""
    if isinstance(checkpoint, SafetensorsCheckpoint):
        return checkpoint.directory
    gguf = getattr(checkpoint, "path", None)
    if isinstance(gguf, Path) and gguf.suffix == ".gguf":  # also when opened by hub id
        return gguf.parent
    path = Path(str(checkpoint.source)).expanduser()
    if path.exists():
        return path if path.is_dir() else path.parent
    return None


def tokenizer_source(checkpoint: Checkpoint) -> Path | None:
    """Where an output's tokenizer comes from: a GGUF file carries its own (converted when the output
    is written), any other checkpoint the tokenizer files of its directory."""
    path = getattr(checkpoint, "path", None)
    if isinstance(path, Path) and path.suffix == ".gguf":
        return path
    return checkpoint_dir(checkpoint)


def weight_files(checkpoint: Checkpoint) -> list[Path]:
    if isinstance(checkpoint, SafetensorsCheckpoint):
        return [mapped.path for mapped in checkpoint.files]
    directory = checkpoint_dir(checkpoint)
    path = Path(str(checkpoint.source)).expanduser()
    if path.is_file():
        return [path]
    return sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".gguf", ".bin")) if directory else []
