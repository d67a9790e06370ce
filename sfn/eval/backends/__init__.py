"""Generation backends: one interface (`Backend.generate`) over transformers and vLLM."""

from sfn.eval.backends.base import Backend, Completion

__all__ = ["Backend", "Completion"]
