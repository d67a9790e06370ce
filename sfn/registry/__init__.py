"""The module registry shared by every stethoscope: canonical kinds, per-architecture names, selectors."""

from sfn.registry.kinds import GROUPS, KINDS, LINEAR_KINDS, NORM_KINDS, expand_kind
from sfn.registry.modules import ModuleMap, ModulePart, classify_tensors, module_map, module_map_of
from sfn.registry.parts import iter_part_blocks, read_part
from sfn.registry.select import Selector, parse_layers, resolve_layers, select

__all__ = [
    "GROUPS",
    "KINDS",
    "LINEAR_KINDS",
    "NORM_KINDS",
    "ModuleMap",
    "ModulePart",
    "Selector",
    "classify_tensors",
    "expand_kind",
    "iter_part_blocks",
    "module_map",
    "module_map_of",
    "parse_layers",
    "read_part",
    "resolve_layers",
    "select",
]
