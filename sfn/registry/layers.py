"""Removing decoder layers: which layers stay, what each tensor is renamed to, how the config shrinks.

One plan for both executors of the Destruction Stethoscope's `remove`: on disk (tensors renamed,
config.json rewritten) and in memory (the module list shortened, the config edited and restored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sfn.registry.architectures import Architecture, architecture_for

# A config section that may hold its own layer count: multimodal configs nest the text model's.
NESTED_SECTIONS = ("text_config",)
# Lists in a config that are not per-layer even when their length happens to equal the layer count.
NOT_PER_LAYER = frozenset({"architectures"})


def layer_in_name(name: str, architecture: Architecture) -> int | None:
    """The layer index a tensor name carries (`model.layers.3.mlp...` -> 3), for tensors outside the registry."""
    containers = "|".join(map(re.escape, architecture.layer_containers))
    match = re.search(rf"(?:^|\.)(?:{containers})\.(\d+)\.", name)
    return int(match[1]) if match else None


@dataclass(frozen=True)
class LayerRemoval:
    """Dropping `removed` of a model's `num_layers` decoder layers; the rest are renumbered 0, 1, ..."""

    architecture: Architecture
    num_layers: int
    removed: tuple[int, ...]

    @property
    def kept(self) -> list[int]:
        dropped = set(self.removed)
        return [i for i in range(self.num_layers) if i not in dropped]

    @property
    def new_index(self) -> dict[int, int]:
        return {old: new for new, old in enumerate(self.kept)}

    def renamed(self, name: str, layer: int) -> str:
        """`name` of a kept layer's tensor with its index renumbered (the first dotted component equal to it)."""
        new = self.new_index[layer]
        return name if new == layer else re.sub(rf"(?<=\.){layer}(?=\.)", str(new), name, count=1)

    def config_changes(self, config: Mapping[str, Any]) -> Iterator[tuple[str | None, str, Any]]:
        """(section, key, new value) for every config entry the removal changes: the layer count and
        every per-layer list (layer_types, no_rope_layers, ...), at the top and in nested sections
        (section None is the top level)."""
        kept = self.kept
        for section_name in (None, *NESTED_SECTIONS):
            section = config if section_name is None else config.get(section_name)
            if not isinstance(section, Mapping):
                continue
            for key, value in section.items():
                if key in self.architecture.layer_count_keys and value == self.num_layers:
                    yield section_name, key, len(kept)
                elif isinstance(value, list) and len(value) == self.num_layers and key not in NOT_PER_LAYER:
                    yield section_name, key, [value[i] for i in kept]


def layer_removal(config: Mapping[str, Any], removed: list[int], num_layers: int) -> LayerRemoval:
    """The plan for dropping `removed` layers of a model with this config and `num_layers` layers."""
    architecture, _ = architecture_for(config.get("model_type"))
    return LayerRemoval(architecture, num_layers, tuple(sorted(set(removed))))
