"""Writing only the trained tensors of a Freeze run as a module plugin (the surgery plugin format).

The plugin names its base by the base's values of the parts it replaces. A model trained from a path
has its base on disk: the plugin is extracted from the saved model against it, which works under
every backend (a ZeRO-3 process holds only shards). An in-memory model has no base on disk: its
trained tensors are copied before the first step, and read over the model itself (whose frozen
tensors never change).
"""

from __future__ import annotations

import re
import os
from pathlib import Path
from typing import Any

import torch

from sfn.stethoscopes.freeze.presets import TrainableParameters
from sfn.stethoscopes.surgery.plugin import Plugin, extract_plugin
from sfn.io.sources import ModelTensors


class BeforeTraining(ModelTensors):
    """A trained model read as it was before training: the saved initial values of its trained tensors."""

    def __init__(self, model: Any, initial: dict[str, torch.Tensor], source: str):
        super().__init__(model)
        self.initial = initial
        self.source = source

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        tensor = self.initial.get(name)
        if tensor is None:
            return super().read(name, rows)
        return tensor if rows is None else tensor[rows]


class AfterTraining(ModelTensors):
    def __init__(self, model: Any, source: str):
        super().__init__(model)
        self.source = source


def plugin_selector(trainable: TrainableParameters) -> str:
    """A selector of exactly the trained tensors (every part of a fused one, since all of it trained).

    A tied embedding is the LM head too, and the plugin format wants both named for such a model.
    """
    names = "|".join(re.escape(name) for name in trainable.names)
    embeds = {p.tensor for p in trainable.parts if p.kind == "embed"}
    tied_embed = trainable.tied_embeddings and embeds & set(trainable.names)
    return f"embed,head; re:(?:{names})" if tied_embed else f"re:(?:{names})"


def write_plugin_from_files(
    base: str | os.PathLike, model_dir: Path, trainable: TrainableParameters, out: Path, *, allow_pickle: bool = False
) -> Path:
    """Write the trained tensors of the saved model `model_dir`, made from the model at `base`, to `out`."""
    return extract_plugin(base, model_dir, plugin_selector(trainable), out, overwrite=True, allow_pickle=allow_pickle).path


def write_plugin(
    model: Any, initial: dict[str, torch.Tensor], trainable: TrainableParameters, source: str, out: Path
) -> Path:
    """Write the trained tensors of `model` to the plugin file `out`; `initial` holds their values before training."""
    base = BeforeTraining(model, initial, source)
    tuned = AfterTraining(model, f"{source} (sfn freeze {trainable.selector})")
    plugin: Plugin = extract_plugin(base, tuned, plugin_selector(trainable), out, overwrite=True)
    return plugin.path
