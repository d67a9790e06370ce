"""Pickled PyTorch checkpoints (`pytorch_model.bin`, `.pt`), read only when the user opts in.

Unpickling can run arbitrary code, so `open_checkpoint` refuses these unless `allow_pickle=True`,
and even then loads with `torch.load(weights_only=True)`, which only rebuilds tensors and containers.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfn.errors import SfnError
from sfn.io.checkpoint import Checkpoint, TensorInfo

if TYPE_CHECKING:
    import torch

PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
PICKLE_REFUSAL = (
    "{path} is a pickled PyTorch checkpoint; loading a pickle can run arbitrary code, so sfn refuses it "
    "by default. Convert it once to safetensors (e.g. `AutoModelForCausalLM.from_pretrained(dir)"
    ".save_pretrained(out)`), or pass allow_pickle=True (--allow-pickle) to load it with "
    "torch.load(weights_only=True)."
)


def pickle_files(path: Path) -> list[Path]:
    """The weight pickles of a file or directory: `pytorch_model*.bin` (not a Trainer's other pickles)."""
    if path.is_file():
        return [path]
    index = path / "pytorch_model.bin.index.json"
    if index.is_file():
        files = [path / n for n in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise SfnError(f"{index} lists shards that are not there: {', '.join(missing)}")
        return files
    return sorted(path.glob("pytorch_model*.bin"))


class PickleCheckpoint(Checkpoint):
    """Tensors from `torch.load(weights_only=True, mmap=True)`; the whole state dict is mapped, not copied."""

    def __init__(self, path: str | Path, source: str | None = None):
        import torch

        path = Path(path)
        self.source = source or str(path)
        self._tensors: dict[str, torch.Tensor] = {}
        for file in pickle_files(path):
            state = _load_weights_only(file)
            if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
                state = state["state_dict"]
            if not isinstance(state, dict):
                raise SfnError(f"{file} does not hold a state dict (found {type(state).__name__})")
            self._tensors.update({k: v for k, v in state.items() if isinstance(v, torch.Tensor)})
        self._infos = {k: TensorInfo(k, tuple(v.shape), v.dtype) for k, v in self._tensors.items()}
        directory = path if path.is_dir() else path.parent
        config_path = directory / "config.json"
        self.config: dict[str, Any] = json.loads(config_path.read_text()) if config_path.is_file() else {}

    def tensors(self) -> dict[str, TensorInfo]:
        return self._infos

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        self.info(name)
        tensor = self._tensors[name]
        return tensor if rows is None else tensor[rows]

    def close(self) -> None:
        self._tensors.clear()


def _load_weights_only(file: Path) -> Any:
    import torch

    try:
        try:
            return torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:
            # Legacy (non-zip) pickles cannot be memory-mapped.
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise SfnError(
            f"{file} holds objects other than tensors, which sfn will not unpickle (that could run code); "
            "convert the checkpoint to safetensors where you trust its source"
        ) from None
