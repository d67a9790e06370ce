"""Weight surgery: the Merge and Destruction stethoscopes and module plugins, on disk and in memory."""

from sfn.lazy import lazy_exports

# Loaded on first use: the package's light modules (the CLI's option lists) must not import torch.
lazy_exports(
    __name__,
    {
        "DestroyResult": "sfn.stethoscopes.surgery.destroy",
        "destroy": "sfn.stethoscopes.surgery.destroy",
        "WeightEdit": "sfn.stethoscopes.surgery.inmemory",
        "destroyed": "sfn.stethoscopes.surgery.inmemory",
        "merged": "sfn.stethoscopes.surgery.inmemory",
        "MergeResult": "sfn.stethoscopes.surgery.merge",
        "merge": "sfn.stethoscopes.surgery.merge",
        "MergePlan": "sfn.stethoscopes.surgery.plan",
        "PluggableModel": "sfn.stethoscopes.surgery.pluggable",
        "Plugin": "sfn.stethoscopes.surgery.plugin",
        "apply_plugin": "sfn.stethoscopes.surgery.plugin",
        "extract_plugin": "sfn.stethoscopes.surgery.plugin",
        "read_plugin": "sfn.stethoscopes.surgery.plugin",
        "plugin_edits": "sfn.stethoscopes.surgery.plugin",
    },
)
