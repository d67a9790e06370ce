"""Experiments: the stethoscopes' edits combined with evaluation - the Merge table, the Destruction
sweep, the Freeze comparison, the transplant and destruction maps. They sit above surgery, freeze and eval, and generate only through the
eval backends."""

from sfn.lazy import lazy_exports

# Loaded on first use: importing the package must not import torch.
lazy_exports(
    __name__,
    {
        "compare": "sfn.experiments.freeze_compare",
        "MERGE_VARIANTS": "sfn.experiments.merge_table",
        "MergeTable": "sfn.experiments.merge_table",
        "merge_table": "sfn.experiments.merge_table",
        "sweep": "sfn.experiments.sweep",
        "map": "sfn.experiments.maps",
        "MapResult": "sfn.experiments.maps",
        "write_map": "sfn.experiments.map_outputs",
    },
)
