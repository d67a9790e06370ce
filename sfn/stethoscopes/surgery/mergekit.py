"""The mergekit recipe equivalent to an sfn merge, so a merge can be reproduced (and shared) with mergekit.

A Merge-stethoscope output is BASE with some tensors replaced by DONOR's: mergekit's `linear` method
with per-tensor weights (1 for the model a tensor comes from, 0 for the other, no normalisation)
computes exactly that. Weight filters are whole tensor names; mergekit matches a filter as a part of
the name, and a whole name is part of no other tensor's name in these architectures.
"""

from __future__ import annotations

from typing import Any

import yaml

from sfn.stethoscopes.surgery.plan import MergePlan


def mergekit_config(base: str, donor: str, plan: MergePlan, dtype: str, tokenizer_from: str) -> str | None:
    """The YAML text, or None when mergekit cannot express the merge (fused parts spliced, renamed tensors)."""
    if any(t.source not in ("base", "donor") for t in plan.tensors):
        return None
    taken = [t.info.name for t in plan.tensors if t.source == "donor"]
    if any(t.donor_tensor not in (None, t.info.name) for t in plan.tensors if t.source == "donor"):
        return None

    def weights(value_taken: int) -> list[dict[str, Any]]:
        return [{"filter": name, "value": value_taken} for name in taken] + [{"value": 1 - value_taken}]

    config = {
        "merge_method": "linear",
        "base_model": base,
        "models": [
            {"model": base, "parameters": {"weight": weights(0)}},
            {"model": donor, "parameters": {"weight": weights(1)}},
        ],
        "parameters": {"normalize": False},
        "dtype": dtype,
        "tokenizer_source": "base" if tokenizer_from == "base" else donor,
    }
    header = (
        f"# The same model as `sfn merge {base} {donor} --take '{plan.selector}'`, as a mergekit recipe:\n"
        "#   mergekit-yaml mergekit_config.yml OUT\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)
