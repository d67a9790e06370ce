"""The module registry shared by every stethoscope: canonical kinds, per-architecture names, selectors."""

from sfn.registry.architectures import Architecture, architecture_for, layer_count
from sfn.registry.kinds import GROUPS, KINDS, LINEAR_KINDS, NORM_KINDS, expand_kind
from sfn.registry.layers import LayerRemoval, layer_in_name, layer_removal
from sfn.registry.modules import ModuleMap, ModulePart, classify_tensors, module_map, module_map_of
from sfn.registry.parts import iter_part_blocks, read_part
from sfn.registry.select import Selector, parse_layers, resolve_layers, select

__all__ = [
    "Architecture",
    "GROUPS",
    "KINDS",
    "LINEAR_KINDS",
    "LayerRemoval",
    "ModuleMap",
    "ModulePart",
    "NORM_KINDS",
    "Selector",
    "architecture_for",
    "classify_tensors",
    "expand_kind",
    "iter_part_blocks",
    "layer_count",
    "layer_in_name",
    "layer_removal",
    "module_map",
    "module_map_of",
    "parse_layers",
    "read_part",
    "resolve_layers",
    "select",
]
