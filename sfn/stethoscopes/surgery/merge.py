"""The Merge Stethoscope on disk: BASE with the selected modules taken from DONOR, streamed to a new model."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from sfn.errors import SfnError, argument
from sfn.io import Checkpoint
from sfn.io.safetensors_reader import SafetensorsCheckpoint
from sfn.io.writer import check_output_dir
from sfn.registry import Selector
from sfn.stethoscopes.surgery.output import (
    DEFAULT_SHARD_SIZE,
    ModelOutput,
    OutputTensor,
    copied_tensor,
    parse_dtype,
    write_model_dir,
)
from sfn.stethoscopes.surgery.mergekit import mergekit_config
from sfn.stethoscopes.surgery.plan import MergePlan, PlannedTensor, plan_merge
from sfn.io.sources import ModelSource, checkpoint_dir, opened, tokenizer_source
from sfn.stethoscopes.surgery.splice import blend, copy_part_


@dataclass
class MergeResult:
    plan: MergePlan
    out: Path | None  # None for a dry run


def spliced_tensor(base: Checkpoint, donor: Checkpoint, planned: PlannedTensor, alpha: float) -> OutputTensor:
    """The base tensor with the planned parts (a fused tensor's rows, or all of it) from the donor, blended by alpha."""
    name, donor_name = planned.info.name, planned.donor_tensor

    def produce() -> torch.Tensor:
        if planned.source == "donor" and alpha == 1:
            return donor.read(donor_name).to(planned.info.dtype, copy=True)
        base_tensor = base.read(name)
        donor_tensor = blend(base_tensor, donor.read(donor_name), alpha)
        if planned.source == "donor":
            return donor_tensor.to(planned.info.dtype, copy=True)
        tensor = base_tensor.clone()
        for item in planned.taken:
            copy_part_(tensor, donor_tensor, item.base)
        return tensor.to(planned.info.dtype)

    return OutputTensor(planned.info, produce, ((base, name), (donor, donor_name)))


def merge_tensors(base: Checkpoint, donor: Checkpoint, plan: MergePlan, *, alpha: float = 1.0) -> list[OutputTensor]:
    """How to produce each output tensor of `plan`, one at a time (selected tensors W_B + alpha (W_R - W_B))."""
    tensors = []
    for planned in plan.tensors:
        if planned.source == "base":
            tensors.append(copied_tensor(base, planned.info.name, planned.info))
        elif planned.source == "donor" and alpha == 1:
            tensors.append(copied_tensor(donor, planned.donor_tensor, planned.info))
        else:
            tensors.append(spliced_tensor(base, donor, planned, alpha))
    return tensors


def merge(
    base: ModelSource,
    donor: ModelSource,
    take: str | Selector,
    out: str | os.PathLike | None = None,
    *,
    shard_size: str | int = DEFAULT_SHARD_SIZE,
    dtype: str | torch.dtype | None = None,
    tokenizer_from: str = "base",
    overwrite: bool = False,
    overwrite_any: bool = False,
    dry_run: bool = False,
    allow_pickle: bool = False,
    alpha: float = 1.0,
) -> MergeResult:
    """Write BASE with every tensor matched by `take` taken from DONOR into the model directory `out`.

    With `dry_run` only the plan is made (which tensor comes from where); nothing is written.
    Every mismatch is raised as one `SfnErrors` before anything is written. `overwrite` replaces an
    earlier sfn output at `out`; `overwrite_any` any directory; `allow_pickle` reads pickled checkpoints.
    `alpha` blends instead of taking: each selected tensor becomes W_B + alpha (W_R - W_B), computed in
    float32 and rounded once (1, the default, takes DONOR's values bit for bit; 0.5 is the midpoint).
    """
    check_alpha(alpha)
    if tokenizer_from not in ("base", "donor"):
        raise SfnError(f"tokenizer_from must be 'base' or 'donor', not {tokenizer_from!r}")
    target_dtype = parse_dtype(dtype)
    with opened(base, allow_pickle=allow_pickle) as base_ck, opened(donor, allow_pickle=allow_pickle) as donor_ck:
        plan = plan_merge(base_ck, donor_ck, take, dtype=target_dtype)
        if dry_run:
            return MergeResult(plan, None)
        if out is None:
            raise SfnError(f"merge needs an output directory, {argument('out')}, or a dry run, {argument('dry_run', True, flag='--plan')}")
        base_dir, donor_dir = checkpoint_dir(base_ck), checkpoint_dir(donor_ck)
        inputs = [p for p in (base_dir, donor_dir) if p is not None]
        check_output_dir(out, inputs=inputs, overwrite=overwrite, overwrite_any=overwrite_any)
        config = dict(base_ck.config)
        if target_dtype is not None:
            config["dtype"] = str(target_dtype).removeprefix("torch.")
        meta = ModelOutput(
            operation="merge",
            inputs={"base": base_ck, "donor": donor_ck},
            config=config,
            extras_from=base_dir,
            tokenizer_from=tokenizer_source(donor_ck if tokenizer_from == "donor" else base_ck),
            card=(
                f"BASE `{base_ck.source}` with the modules selected by `{plan.selector}` taken from DONOR "
                f"`{donor_ck.source}` ({sum(t.source != 'base' for t in plan.tensors)} tensors), everything "
                "else from BASE, without further training (the Merge Stethoscope)."
                + (f" Each selected tensor is W_B + {alpha:g} (W_R - W_B), not R's values." if alpha != 1 else "")
            ),
            parameters={
                "take": plan.selector,
                "dtype": str(target_dtype) if target_dtype else "kept",
                "tokenizer_from": tokenizer_from,
                "alpha": alpha,
            },
            tensor_sources=plan.sources(),
            lineage=[base_ck.source, donor_ck.source],
            relation="merge",
            extra_files=_mergekit_file(base_ck, donor_ck, plan, config, tokenizer_from) if alpha == 1 else {},
        )
        path = write_model_dir(
            out, merge_tensors(base_ck, donor_ck, plan, alpha=alpha), meta, shard_size=shard_size, overwrite=overwrite,
            overwrite_any=overwrite_any, input_paths=inputs,
        )
    return MergeResult(plan, path)


def check_alpha(alpha: float) -> None:
    if not math.isfinite(alpha):
        raise SfnError(f"alpha must be a finite number, got {alpha}; 1 takes the donor's values, 0 keeps the base's")


def _mergekit_file(base: Checkpoint, donor: Checkpoint, plan: MergePlan, config: dict, tokenizer_from: str) -> dict[str, str]:
    """mergekit_config.yml when mergekit can make the same model (it reads safetensors, not GGUF)."""
    if not all(isinstance(checkpoint, SafetensorsCheckpoint) for checkpoint in (base, donor)):
        return {}
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    text = mergekit_config(str(base.source), str(donor.source), plan, dtype, tokenizer_from)
    return {"mergekit_config.yml": text} if text else {}
