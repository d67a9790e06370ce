"""Whether a checkpoint holds every module its architecture has, before a surgery copies it.

A model directory missing, say, one layer's `down_proj` still loads: `from_pretrained` fills the gap
with random values and only logs it. A surgery that wrote such a base would hand the researcher a
broken model that looks whole, so the base is compared with what its architecture builds (on the
meta device: names and shapes, no memory) by canonical part, independent of tensor naming.
"""

from __future__ import annotations

from typing import Any

import torch

from sfn.errors import SfnErrors
from sfn.io import Checkpoint
from sfn.registry import ModuleMap, classify_tensors, module_map
from sfn.io.sources import ModelTensors
from sfn.stethoscopes.surgery.splice import part_key


def _skeleton_map(config: dict[str, Any]) -> ModuleMap | None:
    """The module map of the model `config` describes, or None when transformers cannot build it."""
    try:
        from transformers import CONFIG_MAPPING, AutoModelForCausalLM

        hf_config = CONFIG_MAPPING[config["model_type"]].from_dict(dict(config))
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(hf_config)
    except Exception:  # noqa: BLE001 - an architecture transformers cannot build leaves nothing to compare with
        return None
    # Tied parameters once, as a checkpoint stores them.
    shapes = {name: tuple(parameter.shape) for name, parameter in skeleton.named_parameters()}
    return classify_tensors(shapes, config, warn=False)


def missing_modules(checkpoint: Checkpoint) -> list[str]:
    """The modules (kind, layer, tensor name) the checkpoint's architecture has and the checkpoint lacks."""
    if isinstance(checkpoint, ModelTensors) or not checkpoint.config.get("model_type"):
        return []  # a loaded model is whole by construction; without a config there is nothing to compare
    expected = _skeleton_map(checkpoint.config)
    if expected is None:
        return []
    present = {part_key(part) for part in module_map(checkpoint, warn=False).parts}
    missing = {part_key(part): part for part in expected.parts if part_key(part) not in present}
    return [
        f"{part.kind} {part.param}{'' if part.layer is None else f' of layer {part.layer}'} (tensor {part.tensor} in "
        "transformers' naming)"
        for part in missing.values()
    ]


def check_complete(checkpoint: Checkpoint, role: str) -> None:
    """Raise every module `checkpoint` lacks at once (it would be re-initialised at random when loaded)."""
    missing = missing_modules(checkpoint)
    if missing:
        raise SfnErrors(
            missing,
            f"the {role} {checkpoint.source} lacks {len(missing)} module(s) its architecture "
            f"({checkpoint.config.get('model_type')}) has; a model written from it would load with them "
            "re-initialised at random, so nothing was written. Use a complete checkpoint",
        )
