"""The Freeze stethoscope: fine-tune only chosen modules and see whether the ability follows them."""

from sfn.lazy import lazy_exports

# Loaded on first use: the package's light modules (the CLI's option lists) must not import torch.
lazy_exports(
    __name__,
    {
        "FreezeConfig": "sfn.stethoscopes.freeze.config",
        "Record": "sfn.stethoscopes.freeze.data",
        "read_records": "sfn.stethoscopes.freeze.data",
        "strip_calculator_marks": "sfn.stethoscopes.freeze.data",
        "tokenize_record": "sfn.stethoscopes.freeze.data",
        "PRESETS": "sfn.stethoscopes.freeze.presets",
        "TrainableParameters": "sfn.stethoscopes.freeze.presets",
        "preset_selector": "sfn.stethoscopes.freeze.presets",
        "trainable_parameters": "sfn.stethoscopes.freeze.presets",
        "FreezeResult": "sfn.stethoscopes.freeze.train",
        "freeze": "sfn.stethoscopes.freeze.train",
    },
)
