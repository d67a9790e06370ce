"""Per-head change of the attention projections, accumulated from the same blocks the kernel reads.

A head of o is its block of `head_dim` input columns; a head of q its block of output rows; k and v
have one block of rows per key-value head, which `group` query heads share under grouped-query
attention. Fused tensors (Phi-3 `qkv_proj`, GPT-2 `c_attn`, NeoX `query_key_value`) are split by the
registry first, so within every q, k or v part head h is rows [h * head_dim, (h + 1) * head_dim).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sfn.registry import ModulePart
from sfn.stethoscopes.delta import kernel

HEAD_KINDS = ("q", "k", "v", "o")
HEAD_COLUMNS = ["layer", "kind", "head", "query_heads", "abs_norm", "rel_norm", "share"]


@dataclass(frozen=True)
class HeadLayout:
    heads: int  # heads of this part (key-value heads for k and v)
    head_dim: int
    group: int  # query heads per head of this part (> 1 for k and v under grouped-query attention)


def head_layout(config: Mapping[str, Any], part: ModulePart) -> tuple[HeadLayout | None, str | None]:
    """(layout, None) for the weight of a q, k, v or o part, or (None, why not) when the config does
    not describe its heads; (None, None) for parts that have no heads."""
    if part.kind not in HEAD_KINDS or part.param != "weight" or len(part.shape) != 2 or part.layer is None:
        return None, None
    heads = config.get("num_attention_heads") or config.get("n_head")
    if not isinstance(heads, int) or heads < 1:
        return None, "the config gives no num_attention_heads (or n_head)"
    kv_heads = config.get("num_key_value_heads") or heads
    hidden = config.get("hidden_size") or config.get("n_embd")
    head_dim = config.get("head_dim") or (hidden // heads if isinstance(hidden, int) else None)
    if not isinstance(head_dim, int) or not isinstance(kv_heads, int) or kv_heads < 1 or heads % kv_heads:
        return None, f"the config's heads do not fit ({heads} heads, {kv_heads} key-value heads, head_dim {head_dim})"
    own = kv_heads if part.kind in ("k", "v") else heads
    size = part.shape[1] if part.kind == "o" else part.shape[0]
    if size != own * head_dim:
        axis = "input columns" if part.kind == "o" else "output rows"
        return None, f"{part.tensor} ({part.kind}) has {size} {axis}, not {own} heads x {head_dim}"
    return HeadLayout(own, head_dim, heads // own if part.kind in ("k", "v") else 1), None


@dataclass
class HeadAccumulator:
    """Squared change and squared base weight summed per head row (q, k, v) or head column (o)."""

    part: ModulePart
    layout: HeadLayout
    offset: int = 0
    diff_sq: np.ndarray = field(init=False)
    base_sq: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        size = self.layout.heads * self.layout.head_dim
        self.diff_sq, self.base_sq = np.zeros(size), np.zeros(size)

    def update(self, base: np.ndarray, tuned: np.ndarray) -> None:
        """Add one block pair of kernel arrays (`kernel.pair_arrays`) from `iter_part_blocks`: part rows
        in order, or, for a part stored transposed ([in, out]), stored rows (input columns) in order
        with all of the part's output columns.
        Pairs holding a NaN or inf are left out, as the kernel does."""
        # along the head axis: the block's own rows, or (other orientation) a partial sum over all of it
        by_rows = (self.part.kind == "o") == self.part.transposed
        diff_sq, base_sq = kernel.line_sums(base, tuned, by_rows)
        if by_rows:
            rows = base.shape[0]
            self.diff_sq[self.offset : self.offset + rows] += diff_sq
            self.base_sq[self.offset : self.offset + rows] += base_sq
        else:
            self.diff_sq += diff_sq
            self.base_sq += base_sq
        self.offset += base.shape[0]

    def rows(self) -> list[dict[str, Any]]:
        shape = (self.layout.heads, self.layout.head_dim)
        diff, base = self.diff_sq.reshape(shape).sum(1), self.base_sq.reshape(shape).sum(1)
        total = diff.sum()
        group = self.layout.group
        return [
            {
                "layer": self.part.layer,
                "kind": self.part.kind,
                "head": h,
                "query_heads": str(h) if group == 1 else f"{h * group}-{(h + 1) * group - 1}",
                "abs_norm": math.sqrt(diff[h]),
                "rel_norm": math.sqrt(diff[h] / base[h]) if base[h] > 0 else math.nan,
                "share": diff[h] / total if total > 0 else math.nan,
            }
            for h in range(self.layout.heads)
        ]


def heads_table(accumulators: list[HeadAccumulator]) -> pd.DataFrame:
    """One row per (layer, kind, head), layers in order, kinds q, k, v, o."""
    table = pd.DataFrame([row for acc in accumulators for row in acc.rows()], columns=HEAD_COLUMNS)
    if table.empty:
        return table
    table["kind_order"] = table["kind"].map(HEAD_KINDS.index)
    table = table.sort_values(["layer", "kind_order", "head"], kind="stable").drop(columns="kind_order")
    table["layer"] = table["layer"].astype("Int64")
    return table.reset_index(drop=True)


def top_heads(heads: pd.DataFrame, kind: str = "o", mass: float = 0.5) -> pd.DataFrame:
    """Per layer, the fewest heads of `kind` that carry at least `mass` of the layer's change."""
    rows = []
    for layer, of_layer in heads[(heads["kind"] == kind) & heads["share"].notna()].groupby("layer"):
        ordered = of_layer.sort_values("share", ascending=False, kind="stable")
        needed = int(np.searchsorted(ordered["share"].cumsum().to_numpy(), mass - 1e-12)) + 1
        chosen = ordered.iloc[:needed]
        rows.append({"layer": int(layer), "heads": [int(h) for h in chosen["head"]],
                     "share": float(chosen["share"].sum()), "of": len(of_layer)})
    return pd.DataFrame(rows, columns=["layer", "heads", "share", "of"])
