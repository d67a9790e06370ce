"""The Delta stethoscope: per layer and module, how far a fine-tune's weights moved from its base."""

from sfn.delta.compute import DeltaOptions, check_compatible, delta
from sfn.delta.summary import ranking_text, summarize, write_outputs

__all__ = ["DeltaOptions", "check_compatible", "delta", "ranking_text", "summarize", "write_outputs"]
