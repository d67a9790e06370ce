"""Weight surgery: the Merge and Destruction stethoscopes and module plugins, on disk and in memory."""

from sfn.stethoscopes.surgery.destroy import DestroyResult, destroy
from sfn.stethoscopes.surgery.inmemory import WeightEdit, destroyed, merged
from sfn.stethoscopes.surgery.merge import MergeResult, merge
from sfn.stethoscopes.surgery.plan import MergePlan
from sfn.stethoscopes.surgery.pluggable import PluggableModel
from sfn.stethoscopes.surgery.plugin import Plugin, apply_plugin, extract_plugin, read_plugin
from sfn.stethoscopes.surgery.sweep import sweep

__all__ = [
    "DestroyResult",
    "MergePlan",
    "MergeResult",
    "PluggableModel",
    "Plugin",
    "WeightEdit",
    "apply_plugin",
    "destroy",
    "destroyed",
    "extract_plugin",
    "merge",
    "merged",
    "read_plugin",
    "sweep",
]
