"""Whatever a user calls a model — a path, a hub id, an open checkpoint, a loaded model or a state dict —
read as a `Checkpoint`, so every function that takes a model takes all of them alike."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from sfn.errors import SfnError
from sfn.io.checkpoint import Checkpoint, TensorInfo
from sfn.io.resolve import open_checkpoint
from sfn.io.safetensors_reader import SafetensorsCheckpoint

if TYPE_CHECKING:
    import torch

#: a path or hub id, an open `Checkpoint`, a loaded model (`torch.nn.Module`, e.g. a transformers
#: `PreTrainedModel`) or a state dict (name -> tensor)
ModelSource = Union[str, os.PathLike, Checkpoint, "torch.nn.Module", Mapping[str, "torch.Tensor"]]


class ModelTensors(Checkpoint):
    """A loaded model's tensors behind the `Checkpoint` interface, read without copying on the CPU.

    A module is read through its parameters (tied ones once, under their first name, as
    `save_pretrained` writes them), so in-place edits of `parameters[name]` change the model. A
    state dict is read as given, except that a tensor sharing storage with an earlier one (a tied
    head) is left out for the same reason.
    """

    def __init__(self, model: torch.nn.Module | Mapping[str, torch.Tensor], *, source: str | None = None):
        import torch

        self.model = model
        if isinstance(model, torch.nn.Module):
            config = getattr(model, "config", None)
            self.config: dict[str, Any] = config.to_dict() if hasattr(config, "to_dict") else {}
            self.parameters: dict[str, torch.Tensor] = dict(model.named_parameters())
            default = str(getattr(model, "name_or_path", "") or type(model).__name__)
        else:
            self.config = {}
            self.parameters = _untied(model)
            default = "state dict"
        self.source = source or default
        self._infos = {name: TensorInfo(name, tuple(t.shape), t.dtype) for name, t in self.parameters.items()}

    def tensors(self) -> dict[str, TensorInfo]:
        return self._infos

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        """A view of a tensor in CPU memory; a copy, rows first, of one on an accelerator (readers of a
        `Checkpoint` compute and write on the CPU)."""
        tensor = self.parameters[name].detach()
        tensor = tensor if rows is None else tensor[rows]
        return tensor if tensor.device.type == "cpu" else tensor.cpu()


def _untied(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    import torch

    kept: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, tuple[int, ...], tuple[int, ...]]] = set()
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise SfnError(f"state dict entry {name!r} is a {type(tensor).__name__}, not a tensor")
        key = (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()))
        if tensor.numel() and key in seen:
            continue
        seen.add(key)
        kept[name] = tensor
    return kept


def _is_module(source: object) -> bool:
    """Whether `source` is a torch module, without importing torch (a module exists only once torch is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(source, torch.nn.Module)


def is_loaded(source: object) -> bool:
    """Whether `source` is a model in memory (a module or a state dict) rather than something to open."""
    return isinstance(source, Mapping) or _is_module(source)


@contextmanager
def opened(source: ModelSource, *, allow_pickle: bool = False) -> Iterator[Checkpoint]:
    """`source` as a Checkpoint; closes it afterwards only if it was opened here."""
    if isinstance(source, Checkpoint):
        yield source
    elif is_loaded(source):
        yield ModelTensors(source)
    elif isinstance(source, (str, os.PathLike)):
        checkpoint = open_checkpoint(source, allow_pickle=allow_pickle)
        try:
            yield checkpoint
        finally:
            checkpoint.close()
    else:
        raise SfnError(
            f"a model is a path, a hub id, a loaded model or a state dict, not a {type(source).__name__} "
            "(a (model, tokenizer) pair from sfn.load_model: pass its first item)"
        )


def source_name(source: ModelSource) -> str:
    """How `source` is named in messages and provenance (a loaded model by where it was loaded from)."""
    if isinstance(source, Checkpoint):
        return str(source.source)
    if _is_module(source):
        return str(getattr(source, "name_or_path", "") or type(source).__name__)
    if isinstance(source, Mapping):
        return "state dict"
    return str(source)


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
    """The files holding the checkpoint's weights; none for a loaded model, whose weights (perhaps
    edited since) are in memory rather than in the files it was loaded from."""
    if isinstance(checkpoint, ModelTensors):
        return []
    if isinstance(checkpoint, SafetensorsCheckpoint):
        return [mapped.path for mapped in checkpoint.files]
    directory = checkpoint_dir(checkpoint)
    path = Path(str(checkpoint.source)).expanduser()
    if path.is_file():
        return [path]
    return sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".gguf", ".bin")) if directory else []
