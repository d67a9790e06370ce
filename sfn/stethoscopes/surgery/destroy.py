"""The Destruction Stethoscope on disk: zero, re-initialise or remove the selected modules of a model.

`zero` and `reinit` edit only the selected parts (rows of a fused tensor included); `remove` drops
every layer the selector touches, renumbers the layers after it and updates the config to match.
"""

from __future__ import annotations

import copy
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sfn.errors import SfnError, SfnErrors, argument
from sfn.io import Checkpoint, TensorInfo
from sfn.io.writer import check_output_dir
from sfn.registry import LayerRemoval, ModuleMap, ModulePart, Selector, layer_in_name, layer_removal, module_map
from sfn.stethoscopes.surgery.choices import METHODS
from sfn.stethoscopes.surgery.output import DEFAULT_SHARD_SIZE, ModelOutput, OutputTensor, copied_tensor, parse_dtype, write_model_dir
from sfn.stethoscopes.surgery.complete import check_complete
from sfn.stethoscopes.surgery.plan import parse_selector, select_parts, tied_problem
from sfn.io.sources import ModelSource, checkpoint_dir, opened, tokenizer_source
from sfn.stethoscopes.surgery.splice import reinit_values, write_part_


def destroy_part_(tensor: torch.Tensor, part: ModulePart, method: str, *, std: float, seed: int) -> None:
    """Zero or re-initialise the part in place inside its stored tensor."""
    if method == "zero":
        values = torch.zeros(part.shape, dtype=tensor.dtype)
    else:
        values = reinit_values(part, std=std, seed=seed, dtype=tensor.dtype)
    write_part_(tensor, part, values.to(tensor.device))


def selected_for_destruction(
    checkpoint: Checkpoint, selector: str | Selector, method: str, base_map: ModuleMap | None = None
) -> list[ModulePart]:
    """The parts to destroy, or every problem with the request at once."""
    problems = []
    if method not in METHODS:
        problems.append(f"unknown destruction method {method!r}: use one of {', '.join(METHODS)}")
    selector = parse_selector(selector)
    base_map = base_map or module_map(checkpoint, warn=False)
    parts = select_parts(base_map, selector, checkpoint.source, problems)
    if method in ("zero", "reinit"):
        tied = tied_problem(base_map, parts, selector, checkpoint.source)
        if tied:
            problems.append(tied)
    if method == "remove" and parts:
        layers = layers_of(parts)
        if not layers:
            problems.append(f"remove drops whole layers, but {str(selector)!r} selects none; use e.g. 'all@5-30'")
        elif len(layers) >= base_map.num_layers:
            problems.append(f"{str(selector)!r} would remove all {base_map.num_layers} layers; keep at least one")
    if problems:
        raise SfnErrors(problems, f"cannot destroy {str(selector)!r} in {checkpoint.source}")
    return parts


def layers_of(parts: list[ModulePart]) -> list[int]:
    return sorted({p.layer for p in parts if p.layer is not None})


def tensor_layer(name: str, base_map: ModuleMap, removal: LayerRemoval) -> int | None:
    for part in base_map.parts_of(name):
        return part.layer
    return layer_in_name(name, removal.architecture)


def removed_layers_config(config: dict[str, Any], removal: LayerRemoval) -> dict[str, Any]:
    """The config after the removal: layer count and every per-layer list shortened."""
    result = copy.deepcopy(config)
    for section, key, value in removal.config_changes(config):
        (result if section is None else result[section])[key] = value
    return result


@dataclass
class DestroyResult:
    out: Path
    method: str
    changes: pd.DataFrame  # one row per tensor destroyed, dropped or renumbered (input and output name)


def _destroyed_tensor(
    checkpoint: Checkpoint, out: TensorInfo, parts: list[ModulePart], method: str, std: float, seed: int
) -> OutputTensor:
    def produce() -> torch.Tensor:
        tensor = checkpoint.read(out.name).to(out.dtype, copy=True)
        for part in parts:
            destroy_part_(tensor, part, method, std=std, seed=seed)
        return tensor

    return OutputTensor(out, produce, ((checkpoint, out.name),))


def destroy_tensors(
    checkpoint: Checkpoint,
    base_map: ModuleMap,
    parts: list[ModulePart],
    method: str,
    *,
    std: float,
    seed: int,
    dtype: torch.dtype | None,
) -> tuple[list[OutputTensor], list[dict[str, Any]]]:
    """The output tensors and one change record per tensor destroyed, dropped or renamed."""
    by_tensor: dict[str, list[ModulePart]] = defaultdict(list)
    for part in parts:
        by_tensor[part.tensor].append(part)
    removal = layer_removal(checkpoint.config, layers_of(parts) if method == "remove" else [], base_map.num_layers)
    tensors, changes = [], []
    for name, info in checkpoint.tensors().items():
        out_dtype = dtype if dtype is not None and info.dtype.is_floating_point else info.dtype
        if method == "remove":
            layer = tensor_layer(name, base_map, removal)
            if layer in removal.removed:
                changes.append({"tensor": name, "output": "", "change": "dropped", "layer": layer})
                continue
            out_name = name if layer is None else removal.renamed(name, layer)
            if out_name != name:
                changes.append({"tensor": name, "output": out_name, "change": "renumbered", "layer": layer})
            tensors.append(copied_tensor(checkpoint, name, TensorInfo(out_name, info.shape, out_dtype)))
        elif name in by_tensor:
            kinds = ",".join(sorted({p.kind for p in by_tensor[name]}))
            changes.append({"tensor": name, "output": name, "change": f"{method} {kinds}", "layer": by_tensor[name][0].layer})
            tensors.append(_destroyed_tensor(checkpoint, TensorInfo(name, info.shape, out_dtype), by_tensor[name], method, std, seed))
        else:
            tensors.append(copied_tensor(checkpoint, name, TensorInfo(name, info.shape, out_dtype)))
    return tensors, changes


def destroy(
    model: ModelSource,
    select: str | Selector,
    out: str | os.PathLike,
    *,
    method: str = "zero",
    std: float = 0.02,
    seed: int = 0,
    shard_size: str | int = DEFAULT_SHARD_SIZE,
    dtype: str | torch.dtype | None = None,
    overwrite: bool = False,
    overwrite_any: bool = False,
    allow_pickle: bool = False,
) -> DestroyResult:
    """Write `model` with the selected modules destroyed by `method` (zero, reinit, remove) to `out`.

    The output is checked before any work: never an input, and an existing one is replaced only with
    `overwrite` (an earlier sfn output) or `overwrite_any` (anything)."""
    if std <= 0 and method == "reinit":
        raise SfnError(f"{argument('std')} must be positive, got {std}")
    target_dtype = parse_dtype(dtype)
    with opened(model, allow_pickle=allow_pickle) as checkpoint:
        check_complete(checkpoint, "model")
        base_map = module_map(checkpoint)
        parts = selected_for_destruction(checkpoint, select, method, base_map)
        source_dir = checkpoint_dir(checkpoint)
        inputs = [source_dir] if source_dir else []
        check_output_dir(out, inputs=inputs, overwrite=overwrite, overwrite_any=overwrite_any)
        tensors, changes = destroy_tensors(
            checkpoint, base_map, parts, method, std=std, seed=seed, dtype=target_dtype
        )
        config = dict(checkpoint.config)
        if method == "remove":
            config = removed_layers_config(config, layer_removal(config, layers_of(parts), base_map.num_layers))
        if target_dtype is not None:
            config["dtype"] = str(target_dtype).removeprefix("torch.")
        parameters: dict[str, Any] = {"select": str(parse_selector(select)), "method": method}
        if method == "reinit":
            parameters.update(std=std, seed=seed)
        if method == "remove":
            parameters["removed_layers"] = layers_of(parts)
        meta = ModelOutput(
            operation="destroy",
            inputs={"model": checkpoint},
            config=config,
            extras_from=source_dir,
            tokenizer_from=tokenizer_source(checkpoint),
            lineage=[checkpoint.source],
            card=f"`{checkpoint.source}` with `{parameters['select']}` destroyed by `{method}` (the Destruction Stethoscope).",
            parameters=parameters,
            tensor_sources={t.info.name: "model" for t in tensors} | {c["output"]: c["change"] for c in changes if c["output"]},
        )
        path = write_model_dir(
            out, tensors, meta, shard_size=shard_size, overwrite=overwrite, overwrite_any=overwrite_any, input_paths=inputs
        )
    return DestroyResult(path, method, pd.DataFrame(changes, columns=["tensor", "output", "change", "layer"]))
