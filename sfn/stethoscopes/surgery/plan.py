"""What a surgery takes from where, validated up front: every problem is reported at once, before any write."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd
import torch

from sfn.errors import SfnError, SfnErrors
from sfn.io import Checkpoint, TensorInfo
from sfn.registry import ModuleMap, ModulePart, Selector, module_map
from sfn.stethoscopes.surgery.complete import check_complete
from sfn.stethoscopes.surgery.splice import describe_part, part_key


@dataclass(frozen=True)
class TakenPart:
    """A selected part of the base and the donor's part that replaces it."""

    base: ModulePart
    donor: ModulePart


def parse_selector(selector: str | Selector) -> Selector:
    return selector if isinstance(selector, Selector) else Selector.parse(selector)


def _layerless_kinds(selector: Selector) -> set[str]:
    """Kinds a selector names without a layer range (the only clauses that can reach embed and head)."""
    return {kind for clause in selector.clauses if clause.layers is None for kind in clause.kinds}


def select_parts(module_map: ModuleMap, selector: Selector, label: str, problems: list[str]) -> list[ModulePart]:
    """The selected parts, recording (not raising) a bad layer range or an empty selection."""
    try:
        parts = selector.select(module_map)
    except SfnError as exc:
        problems.append(f"selector {str(selector)!r} on {label}: {exc}")
        return []
    if not parts:
        problems.append(f"selector {str(selector)!r} matches no tensor of {label}; check `sfn modules {label}`")
    return parts


def tied_problem(module_map: ModuleMap, parts: list[ModulePart], selector: Selector, label: str) -> str | None:
    """Taking only one of embed/head from a model that ties them would silently change the other too."""
    if not module_map.tied_embeddings:
        return None
    kinds = {p.kind for p in parts} | _layerless_kinds(selector)
    if ("embed" in kinds) == ("head" in kinds):
        return None
    chosen, other = ("embed", "head") if "embed" in kinds else ("head", "embed")
    return (
        f"{label} ties its input embedding and LM head (tie_word_embeddings), so taking only {chosen!r} would "
        f"change {other!r} as well; select both ('embed,head') or neither"
    )


def _architecture_problems(base: Checkpoint, donor: Checkpoint, base_map: ModuleMap, donor_map: ModuleMap) -> list[str]:
    problems = []
    if base_map.model_type != donor_map.model_type:
        problems.append(
            f"architectures differ: {base.source} is {base_map.model_type!r}, {donor.source} is "
            f"{donor_map.model_type!r}; only models of one architecture can exchange modules"
        )
    if base_map.num_layers != donor_map.num_layers:
        problems.append(
            f"layer count differs: {base.source} has {base_map.num_layers}, {donor.source} has {donor_map.num_layers}; "
            "layer i of one is not layer i of the other, so their modules cannot be exchanged by layer"
        )
    base_vocab, donor_vocab = base.config.get("vocab_size"), donor.config.get("vocab_size")
    if base_vocab and donor_vocab and base_vocab != donor_vocab:
        problems.append(
            f"vocabulary sizes differ: {base.source} has {base_vocab}, {donor.source} has {donor_vocab}; "
            "their token ids do not mean the same tokens, so their modules do not fit together"
        )
    return problems


def match_parts(
    base: Checkpoint,
    donor: Checkpoint,
    selector: str | Selector,
    *,
    base_map: ModuleMap | None = None,
    donor_map: ModuleMap | None = None,
    action: str = "take",
) -> list[TakenPart]:
    """Pair every selected part of `base` with the donor's part, or raise every mismatch at once."""
    selector = parse_selector(selector)
    base_map = base_map or module_map(base, warn=False)
    donor_map = donor_map or module_map(donor, warn=False)
    problems = _architecture_problems(base, donor, base_map, donor_map)
    parts = select_parts(base_map, selector, base.source, problems)
    tied = tied_problem(base_map, parts, selector, base.source)
    if tied:
        problems.append(tied)
    if any(p.kind in ("embed", "head") for p in parts) and base_map.tied_embeddings != donor_map.tied_embeddings:
        problems.append(
            f"{base.source} {'ties' if base_map.tied_embeddings else 'does not tie'} its embedding and LM head "
            f"but {donor.source} {'does' if donor_map.tied_embeddings else 'does not'}; leave embed and head out"
        )
    donor_parts = {part_key(p): p for p in donor_map.parts}
    taken = []
    for part in parts:
        other = donor_parts.get(part_key(part))
        if other is None:
            problems.append(f"{donor.source} has no {describe_part(part)}; leave it out of the selector")
        elif other.shape != part.shape or other.rows != part.rows:
            problems.append(
                f"{describe_part(part)} is {list(part.shape)} in {base.source} but {list(other.shape)} "
                f"in {donor.source} ({other.tensor}); these models differ in size there"
            )
        elif other.fused and donor.info(other.tensor).shape != base.info(part.tensor).shape:
            problems.append(
                f"fused tensor {part.tensor} is {list(base.info(part.tensor).shape)} in {base.source} but "
                f"{list(donor.info(other.tensor).shape)} in {donor.source}"
            )
        else:
            taken.append(TakenPart(part, other))
    if problems:
        raise SfnErrors(problems, f"cannot {action} {str(selector)!r} from {donor.source} into {base.source}")
    return taken


def group_by_tensor(taken: list[TakenPart]) -> dict[str, list[TakenPart]]:
    grouped: dict[str, list[TakenPart]] = defaultdict(list)
    for item in taken:
        grouped[item.base.tensor].append(item)
    return dict(grouped)


def takes_whole(base_map: ModuleMap, name: str, items: list[TakenPart]) -> bool:
    """Whether every part of base tensor `name` is taken from one donor tensor (a plain tensor copy)."""
    return len(items) == len(base_map.parts_of(name)) and len({i.donor.tensor for i in items}) == 1


@dataclass(frozen=True)
class PlannedTensor:
    """One output tensor: its name, shape and dtype, and where its values come from."""

    info: TensorInfo
    source: str  # "base", "donor", or "base+donor" for a fused tensor with some parts from the donor
    taken: tuple[TakenPart, ...] = ()

    @property
    def donor_tensor(self) -> str | None:
        return self.taken[0].donor.tensor if self.taken else None


@dataclass
class MergePlan:
    base: str
    donor: str
    selector: str
    tensors: list[PlannedTensor] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        """One row per output tensor: tensor, source, kinds taken, donor tensor, shape, dtype, bytes."""
        return pd.DataFrame(
            [
                {
                    "tensor": t.info.name,
                    "source": t.source,
                    "kinds": ",".join(sorted({i.base.kind for i in t.taken})),
                    "donor_tensor": t.donor_tensor or "",
                    "shape": "x".join(map(str, t.info.shape)),
                    "dtype": t.info.dtype_name,
                    "bytes": t.info.nbytes,
                }
                for t in self.tensors
            ]
        )

    def summary(self) -> pd.DataFrame:
        """Tensor count and bytes per source."""
        frame = self.frame()
        return frame.groupby("source", sort=False).agg(tensors=("tensor", "size"), bytes=("bytes", "sum"))

    def sources(self) -> dict[str, str]:
        return {t.info.name: t.source if not t.taken or t.source == "donor" else _spliced_label(t) for t in self.tensors}


def _spliced_label(tensor: PlannedTensor) -> str:
    return "base+donor:" + ",".join(sorted({i.base.kind for i in tensor.taken}))


def plan_merge(
    base: Checkpoint, donor: Checkpoint, selector: str | Selector, *, dtype: torch.dtype | None = None
) -> MergePlan:
    """Which output tensor comes from which model; raises every mismatch at once."""
    selector = parse_selector(selector)
    check_complete(base, "base")
    base_map = module_map(base)
    taken = group_by_tensor(match_parts(base, donor, selector, base_map=base_map))
    plan = MergePlan(base.source, donor.source, str(selector))
    for name, info in base.tensors().items():
        out_dtype = dtype if dtype is not None and info.dtype.is_floating_point else info.dtype
        out = TensorInfo(name, info.shape, out_dtype)
        items = taken.get(name)
        if not items:
            plan.tensors.append(PlannedTensor(out, "base"))
        else:
            source = "donor" if takes_whole(base_map, name, items) else "base+donor"
            plan.tensors.append(PlannedTensor(out, source, tuple(items)))
    return plan
