"""The Freeze stethoscope: fine-tune only chosen modules and see whether the ability follows them."""

from sfn.freeze.compare import compare
from sfn.freeze.config import FreezeConfig
from sfn.freeze.data import Record, read_records, strip_calculator_marks, tokenize_record
from sfn.freeze.presets import PRESETS, TrainableParameters, preset_selector, trainable_parameters
from sfn.freeze.train import FreezeResult, freeze

__all__ = [
    "PRESETS",
    "FreezeConfig",
    "FreezeResult",
    "Record",
    "TrainableParameters",
    "compare",
    "freeze",
    "preset_selector",
    "read_records",
    "strip_calculator_marks",
    "tokenize_record",
    "trainable_parameters",
]
