"""Reading checkpoints lazily: one tensor, or one block of rows, at a time."""

from sfn.io.checkpoint import Checkpoint, TensorInfo
from sfn.io.resolve import open_checkpoint

__all__ = ["Checkpoint", "TensorInfo", "open_checkpoint"]
