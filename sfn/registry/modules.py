"""The module map: every tensor of a model classified into canonical parts, fused tensors split.

`classify_tensors` works from names and shapes alone, so the same map describes a checkpoint on disk
(`module_map(checkpoint)`) and a model already loaded in memory (`module_map_of(model)`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sfn.io.checkpoint import Checkpoint
from sfn.registry.architectures import IGNORED, RowRanges, layer_count, rules_for

log = logging.getLogger("sfn")


@dataclass(frozen=True)
class ModulePart:
    """One canonical module's parameter (weight or bias), possibly a slice of a fused tensor."""

    tensor: str  # the tensor's name in the checkpoint
    kind: str  # canonical kind: q, k, v, o, gate, up, down, ..., embed, head
    layer: int | None  # None for embeddings, the final norm and the head
    param: str  # "weight" or "bias"
    shape: tuple[int, ...]  # in Hugging Face orientation: [out, in] for weights
    rows: RowRanges | None = None  # output rows of a fused tensor that belong to this kind
    transposed: bool = False  # stored [in, out] (GPT-2 Conv1D)

    @property
    def fused(self) -> bool:
        return self.rows is not None

    @property
    def numel(self) -> int:
        n = 1
        for dim in self.shape:
            n *= dim
        return n


@dataclass
class ModuleMap:
    model_type: str | None
    generic: bool  # classified by the generic fallback rules (unknown architecture)
    num_layers: int
    tied_embeddings: bool
    parts: list[ModulePart]
    unclassified: list[str] = field(default_factory=list)

    def parts_of(self, tensor: str) -> list[ModulePart]:
        return [p for p in self.parts if p.tensor == tensor]

    @property
    def tensor_names(self) -> list[str]:
        return list(dict.fromkeys(p.tensor for p in self.parts))


def classify_tensors(
    shapes: Mapping[str, tuple[int, ...]], config: Mapping[str, Any], *, source: str = "model", warn: bool = True
) -> ModuleMap:
    """Classify every tensor named in `shapes` with the rules of `config['model_type']`."""
    model_type = config.get("model_type")
    rules, generic = rules_for(model_type)
    parts: list[ModulePart] = []
    unclassified: list[str] = []
    for name, shape in shapes.items():
        if IGNORED.fullmatch(name):
            continue
        for candidate in rules:
            match = candidate.pattern.fullmatch(name)
            if match:
                break
        else:
            unclassified.append(name)
            continue
        layer = int(match["layer"]) if "layer" in match.groupdict() and match["layer"] is not None else None
        param = match["param"]
        shape = tuple(shape)
        hf_shape = shape[::-1] if candidate.transposed and len(shape) == 2 else shape
        if candidate.fused is None:
            parts.append(ModulePart(name, candidate.kind, layer, param, hf_shape, None, candidate.transposed))
            continue
        for kind, rows in candidate.fused(config, hf_shape[0], name):
            part_shape = (sum(b - a for a, b in rows), *hf_shape[1:])
            parts.append(ModulePart(name, kind, layer, param, part_shape, rows, candidate.transposed))
    layers = [p.layer for p in parts if p.layer is not None]
    num_layers = layer_count(config) or (max(layers) + 1 if layers else 0)
    has_head = any(p.kind == "head" for p in parts)
    tied = bool(config.get("tie_word_embeddings", not has_head)) or not has_head
    if warn and (generic or unclassified):
        _warn(source, model_type, generic, unclassified)
    return ModuleMap(model_type, generic, int(num_layers), tied, parts, unclassified)


def _warn(source: str, model_type: str | None, generic: bool, unclassified: list[str]) -> None:
    if generic:
        log.warning(
            "%s: architecture %r has no sfn mapping; classified tensors by common name patterns", source, model_type
        )
    if unclassified:
        shown = ", ".join(unclassified[:20]) + (f", ... ({len(unclassified)} in all)" if len(unclassified) > 20 else "")
        log.warning("%s: could not classify %d tensors (ignored by selectors): %s", source, len(unclassified), shown)


def module_map(checkpoint: Checkpoint, *, warn: bool = True) -> ModuleMap:
    """The module map of a lazily opened checkpoint (names and shapes only; no tensor is read)."""
    shapes = {name: info.shape for name, info in checkpoint.tensors().items()}
    return classify_tensors(shapes, checkpoint.config, source=checkpoint.source, warn=warn)


def module_map_of(model: Any, *, warn: bool = True) -> ModuleMap:
    """The module map of a loaded `transformers` model (its parameters, tied ones once)."""
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    return classify_tensors(shapes, model.config.to_dict(), source=type(model).__name__, warn=warn)
