"""The Freeze stethoscope: fine-tune only chosen modules and see whether the ability follows them."""

from sfn.stethoscopes.freeze.compare import compare
from sfn.stethoscopes.freeze.config import FreezeConfig
from sfn.stethoscopes.freeze.data import Record, read_records, strip_calculator_marks, tokenize_record
from sfn.stethoscopes.freeze.presets import PRESETS, TrainableParameters, preset_selector, trainable_parameters
from sfn.stethoscopes.freeze.train import FreezeResult, freeze

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
