"""The Delta stethoscope: per layer and module, how far a fine-tune's weights moved from its base."""

from sfn.stethoscopes.delta.compute import DeltaOptions, DeltaResult, check_compatible, delta
from sfn.stethoscopes.delta.summary import ranking_text, summarize, write_outputs

__all__ = ["DeltaOptions", "DeltaResult", "check_compatible", "delta", "ranking_text", "summarize", "write_outputs"]
