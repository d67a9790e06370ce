"""Only the tensors a variant changes, produced one at a time from the checkpoints on disk.

For an engine that keeps the base loaded and takes weight updates (vLLM's running engine): a merged
or destroyed variant is the base plus these tensors, with the same values `sfn merge` and
`sfn destroy` write. Nothing is loaded whole; each tensor is read when the consumer asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from sfn.errors import SfnError
from sfn.registry import Selector, module_map
from sfn.stethoscopes.surgery.destroy import destroy_tensors, selected_for_destruction
from sfn.stethoscopes.surgery.plan import plan_merge
from sfn.io.sources import ModelSource, opened
from sfn.stethoscopes.surgery.merge import check_alpha, spliced_tensor


def merge_edits(
    base: ModelSource, donor: ModelSource, take: str | Selector, *, alpha: float = 1.0
) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for every BASE tensor that `sfn merge BASE DONOR --take TAKE --alpha ALPHA` changes."""
    check_alpha(alpha)
    with opened(base) as base_ck, opened(donor) as donor_ck:
        plan = plan_merge(base_ck, donor_ck, take)
        for planned in plan.tensors:
            if planned.source != "base":
                yield planned.info.name, spliced_tensor(base_ck, donor_ck, planned, alpha).produce()
                donor_ck.release(planned.donor_tensor)


def destroy_edits(
    model: ModelSource, select: str | Selector, method: str = "zero", *, std: float = 0.02, seed: int = 0
) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for every tensor `sfn destroy MODEL --select SELECT --method METHOD` changes.

    `remove` changes the number of layers, which no weight update can do: write that variant with
    `sfn destroy` and load the directory instead.
    """
    if method == "remove":
        raise SfnError("method 'remove' drops layers, which a weight update cannot do: write the variant with `sfn destroy`")
    if method == "reinit" and std <= 0:
        raise SfnError(f"std must be positive, got {std}")
    with opened(model) as checkpoint:
        base_map = module_map(checkpoint, warn=False)
        parts = selected_for_destruction(checkpoint, select, method, base_map)
        changed = {part.tensor for part in parts}
        tensors, _ = destroy_tensors(checkpoint, base_map, parts, method, std=std, seed=seed, dtype=None)
        for output in tensors:
            if output.info.name in changed:
                yield output.info.name, output.produce()
