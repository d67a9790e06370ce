"""Weight surgery: the Merge and Destruction stethoscopes and module plugins, on disk and in memory."""

from sfn.surgery.destroy import DestroyResult, destroy
from sfn.surgery.inmemory import WeightEdit, destroyed, merged
from sfn.surgery.merge import MergeResult, merge
from sfn.surgery.plan import MergePlan
from sfn.surgery.pluggable import PluggableModel
from sfn.surgery.plugin import Plugin, apply_plugin, extract_plugin, read_plugin
from sfn.surgery.sweep import sweep

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
