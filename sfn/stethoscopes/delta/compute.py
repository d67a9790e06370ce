"""The Delta stethoscope: how far each module of a fine-tune moved from its base, streamed.

`delta(base, tuned)` pairs the two checkpoints' module parts (fused tensors split into their
canonical kinds), checks every mismatch before reading any tensor data, then streams each pair in
bounded blocks through the fused statistics kernel. Memory stays near one tensor, whatever the model
size; the kernel reads the memory-mapped bytes directly while a background thread faults the next
blocks in from disk (`sfn.io.read_ahead`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sfn.errors import SfnErrors
from sfn.io import Checkpoint
from sfn.io.sources import ModelSource, opened
from sfn.registry import ModuleMap, Selector, module_map
from sfn.registry.kinds import KINDS
from sfn.stethoscopes.delta import kernel
from sfn.stethoscopes.delta.blocks import PartPair, read_pairs, this_pair
from sfn.stethoscopes.delta.columns import RESULT_COLUMNS, SPECTRAL_COLUMNS
from sfn.stethoscopes.delta.heads import HEAD_COLUMNS, HeadAccumulator, head_layout, heads_table
from sfn.stethoscopes.delta.stats import ChangeAccumulator

if TYPE_CHECKING:
    import torch

DEFAULT_BINS = 2001  # fine enough (0.001 over [-1, 1]) for the figure to zoom into small changes
DEFAULT_CLIP = (-1.0, 1.0)
DEFAULT_EPS = 1e-8
DEFAULT_TOL = 1e-3  # moved_share counts |W_R - W_B| > tol x |W_B|
BLOCK_ELEMENTS = 1 << 24  # elements per streamed block: 32 MiB of bf16 pages at a time


@dataclass(frozen=True)
class DeltaOptions:
    """How the relative change r = (W_R - W_B) / (|W_B| + eps) is histogrammed; checked once."""

    bins: int = DEFAULT_BINS
    clip: tuple[float, float] = DEFAULT_CLIP
    eps: float = DEFAULT_EPS
    block_elements: int = BLOCK_ELEMENTS
    tol: float = DEFAULT_TOL

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.bins, int) or self.bins < 3:
            problems.append(f"bins must be an integer >= 3 (got {self.bins!r})")
        if len(self.clip) != 2 or not self.clip[0] < self.clip[1]:
            problems.append(f"clip must be (low, high) with low < high (got {self.clip!r})")
        if not self.eps > 0:
            problems.append(f"eps must be > 0 (got {self.eps!r}); it keeps r finite where W_B is 0")
        if not self.tol >= 0:
            problems.append(f"tol must be >= 0 (got {self.tol!r}); moved_share counts |W_R - W_B| > tol x |W_B|")
        if self.block_elements < 1:
            problems.append(f"block_elements must be >= 1 (got {self.block_elements!r})")
        if problems:
            raise SfnErrors(problems, "bad delta options")

    @property
    def bin_edges(self) -> np.ndarray:
        return np.linspace(self.clip[0], self.clip[1], self.bins + 1)


@dataclass
class _Plan:
    pairs: list[PartPair]
    notes: list[str] = field(default_factory=list)
    missing_in_tuned: list[str] = field(default_factory=list)
    missing_in_base: list[str] = field(default_factory=list)


@dataclass(repr=False)
class DeltaResult:
    """What `delta` measured: `table` (a plain DataFrame, one row per layer and module kind), `summary`
    (base, tuned, model_type, num_layers, selector, bins, clip, eps, tol, spectral, missing_in_base,
    missing_in_tuned), `notes` (vocabulary differences, tied embeddings, missing tensors, non-finite
    values, zero bases) and `heads` (one row per attention head of q, k, v and o; see `heads_table`)."""

    table: pd.DataFrame
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    heads: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HEAD_COLUMNS))

    @property
    def bin_edges(self) -> np.ndarray:
        """The edges of every row's `histogram` bins (len = bins + 1)."""
        return np.linspace(self.summary["clip"][0], self.summary["clip"][1], self.summary["bins"] + 1)

    def __repr__(self) -> str:
        return f"DeltaResult({self.summary['tuned']!r} vs {self.summary['base']!r}, {len(self.table)} modules)"


def delta(
    base: ModelSource,
    tuned: ModelSource,
    select: str | Selector | None = None,
    *,
    layers: str | None = None,
    bins: int = DEFAULT_BINS,
    clip: tuple[float, float] = DEFAULT_CLIP,
    eps: float = DEFAULT_EPS,
    progress: bool = True,
    allow_pickle: bool = False,
    block_elements: int = BLOCK_ELEMENTS,
    tol: float = DEFAULT_TOL,
    spectral: bool = False,
) -> DeltaResult:
    """How far `tuned` moved from `base`: `.table` has one row per (layer, module kind).

    `base` and `tuned` are each a path, a hub id, a loaded model or a state dict. Columns of
    `.table`: `layer` (<NA> for embeddings, final norm, head), `kind`, `abs_norm` = ||W_R - W_B||_F,
    `rel_norm` = abs_norm / ||W_B||_F, `base_norm`, `tuned_norm`, `cosine`, `max_abs_delta`, the mean
    and std of r inside the clip range (`r_mean`, `r_std`), `clipped_share` (r outside it),
    `bimodality_coef` (Sarle's), `centre_share` (share of r within a quarter std of its mean),
    `bimodal` (coefficient > 5/9 and a valley at the mean: centre_share <= 0.1), `numel`, `tensors`, `note` and
    `histogram` (counts of r in `bins` bins over `clip`; edges in `.bin_edges`).

    How it changed: `changed_share` (elements whose stored bits differ), `moved_share` (finite
    elements with |W_R - W_B| > `tol` x |W_B|), `edge_share` (elements the paper's clamping of r to
    `clip` puts into the two outermost bins), `clamped_bimodality_coef` (Sarle's coefficient of the
    clamped r), `clamp_bimodal` (under clamping the tallest bar is an end bin), `clamped_histogram`
    (the paper's histogram), and `nonfinite` (element pairs holding NaN or inf, left out of every
    other statistic). A module whose base is all zeros has `rel_norm` nan, with a note.
    With `spectral`, per 2-D weight: `sv1_share`, `energy_at_8`, `energy_at_64`, `stable_rank`,
    `base_subspace_share` (see `sfn.stethoscopes.delta.spectral`; one tensor in memory at a time).

    `.notes` lists vocabulary differences, tied embeddings, non-finite values and zero bases;
    `.heads` has one row per attention head of q, k, v and o (`layer, kind, head, query_heads,
    abs_norm, rel_norm, share`).
    """
    options = DeltaOptions(bins, tuple(clip), eps, block_elements, tol)
    selector = select if isinstance(select, Selector) else Selector.parse(select, layers)
    with opened(base, allow_pickle=allow_pickle) as base_ckpt, opened(tuned, allow_pickle=allow_pickle) as tuned_ckpt:
        base_map, tuned_map = check_compatible(base_ckpt, tuned_ckpt)
        plan = plan_pairs(base_map, tuned_map, selector, base_ckpt.source, tuned_ckpt.source)
        streamed = _stream(base_ckpt, tuned_ckpt, plan.pairs, options, progress, spectral)
        plan.notes.extend(streamed.notes)
        summary = {
            "base": base_ckpt.source,
            "tuned": tuned_ckpt.source,
            "model_type": base_map.model_type,
            "num_layers": base_map.num_layers,
            "selector": str(selector),
            "bins": options.bins,
            "clip": list(options.clip),
            "eps": options.eps,
            "tol": options.tol,
            "spectral": spectral,
            # the dtype the randomized sketches multiplied in: bf16 on CPUs with native bf16, else float32
            "spectral_sketch": _sketch_name() if spectral else None,
            "missing_in_base": plan.missing_in_base,
            "missing_in_tuned": plan.missing_in_tuned,
        }
        table = _table(streamed, plan, base_map, spectral)
        return DeltaResult(table, summary, plan.notes, heads_table(streamed.heads))


def check_compatible(base: Checkpoint, tuned: Checkpoint) -> tuple[ModuleMap, ModuleMap]:
    """Module maps of both models, or one error listing every architecture mismatch."""
    problems = []
    for key, what in (("model_type", "architecture"), ("hidden_size", "hidden size"), ("n_embd", "hidden size")):
        a, b = base.config.get(key), tuned.config.get(key)
        if a is not None and b is not None and a != b:
            problems.append(f"{what} differs: {base.source} has {key}={a!r}, {tuned.source} has {key}={b!r}")
    base_map, tuned_map = module_map(base), module_map(tuned)
    if base_map.num_layers != tuned_map.num_layers:
        problems.append(
            f"layer count differs: {base.source} has {base_map.num_layers}, {tuned.source} has {tuned_map.num_layers}"
        )
    if problems:
        raise SfnErrors(problems, "these models cannot be compared (a fine-tune has its base's architecture)")
    return base_map, tuned_map


def plan_pairs(base_map: ModuleMap, tuned_map: ModuleMap, selector: Selector, base_name: str, tuned_name: str) -> _Plan:
    """Pair the selected parts of both models; shape problems are raised together, before any reading."""
    plan = _Plan(pairs=[])
    key = lambda p: (p.tensor, p.kind, p.param)  # noqa: E731
    tuned_parts = {key(p): p for p in tuned_map.parts}
    base_keys = {key(p) for p in base_map.parts}
    problems = []
    for part in selector.select(base_map):
        if part.kind == "head" and base_map.tied_embeddings:
            if "tied embeddings: the head is the embedding matrix and is counted once, as embed" not in plan.notes:
                plan.notes.append("tied embeddings: the head is the embedding matrix and is counted once, as embed")
            continue
        other = tuned_parts.get(key(part))
        if other is None:
            plan.missing_in_tuned.append(part.tensor)
            continue
        pair = PartPair(part, other)
        if other.shape != part.shape:
            if part.kind in ("embed", "head") and other.shape[1:] == part.shape[1:] and not part.fused:
                pair.row_limit = min(part.shape[0], other.shape[0])
                plan.notes.append(
                    f"{part.tensor}: vocabulary sizes differ ({part.shape[0]} rows in {base_name}, "
                    f"{other.shape[0]} in {tuned_name}); compared the {pair.row_limit} shared rows"
                )
            else:
                problems.append(f"{part.tensor} ({part.kind}): shape {part.shape} in {base_name} but {other.shape} in {tuned_name}")
                continue
        plan.pairs.append(pair)
    plan.missing_in_base = [p.tensor for p in selector.select(tuned_map) if key(p) not in base_keys]
    plan.missing_in_tuned = list(dict.fromkeys(plan.missing_in_tuned))
    plan.missing_in_base = list(dict.fromkeys(plan.missing_in_base))
    for side, names in (("base", plan.missing_in_tuned), ("tuned", plan.missing_in_base)):
        if names:
            where = tuned_name if side == "base" else base_name
            plan.notes.append(f"{len(names)} tensors are missing from {where} and were skipped: {', '.join(names[:5])}" + (" ..." if len(names) > 5 else ""))
    if problems:
        raise SfnErrors(problems, "tensor shapes differ between the models")
    return plan


@dataclass
class _Module:
    accumulator: ChangeAccumulator
    tensors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    nonfinite: dict[str, int] = field(default_factory=dict)  # tensor -> non-finite element pairs
    spectral: Future | dict[str, float] | None = None  # a Future while the stream runs


@dataclass
class _Streamed:
    modules: dict[tuple[int | None, str], _Module]
    heads: list[HeadAccumulator]
    notes: list[str]


def _stream(
    base: Checkpoint, tuned: Checkpoint, pairs: list[PartPair], options: DeltaOptions, progress: bool, spectral: bool
) -> _Streamed:
    """Feed every pair's blocks to its module's accumulator, in storage order, releasing pages as we go;
    the blocks are read ahead on a background thread (`sfn.io.read_ahead`) while the kernel computes."""
    order = {name: i for i, name in enumerate(base.tensors())}
    pairs = sorted(pairs, key=lambda p: order[p.base.tensor])
    last_use = {p.base.tensor: i for i, p in enumerate(pairs)}
    streamed = _Streamed({}, [], [])
    total = sum(_pair_bytes(base, tuned, p) for p in pairs)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="delta", disable=not progress, leave=False)
    blocks = read_pairs(base, tuned, pairs, options.block_elements)
    with bar, contextlib.closing(blocks), _spectral_workers(spectral) as workers:
        for i, pair in enumerate(pairs):
            module_key = (pair.base.layer, pair.base.kind)
            if module_key not in streamed.modules:
                streamed.modules[module_key] = _Module(ChangeAccumulator(options.bins, options.clip, options.eps, options.tol))
            module = streamed.modules[module_key]
            accumulator = module.accumulator
            layout, why_not = head_layout(base.config, pair.base)
            heads = HeadAccumulator(pair.base, layout) if layout is not None else None
            if why_not and why_not not in streamed.notes:
                streamed.notes.append(f"no per-head rows: {why_not}")
            nonfinite_before = accumulator.nonfinite
            base_dtype, tuned_dtype = base.info(pair.base.tensor).dtype_name, tuned.info(pair.tuned.tensor).dtype_name
            for base_bits, tuned_bits in this_pair(blocks):
                base_block, tuned_block = kernel.pair_arrays(base_bits, base_dtype, tuned_bits, tuned_dtype)
                accumulator.update(base_block, tuned_block)
                if heads is not None:
                    heads.update(base_block, tuned_block)
            if heads is not None:
                streamed.heads.append(heads)
            if accumulator.nonfinite > nonfinite_before:
                module.nonfinite[pair.base.tensor] = accumulator.nonfinite - nonfinite_before
            if spectral and pair.base.param == "weight" and len(pair.base.shape) == 2:
                if module.spectral is None:
                    module.spectral = workers.submit(lambda pair=pair: _pair_copies(base, tuned, pair))
                else:
                    module.notes.append(f"spectral columns describe the first weight only, not {pair.base.tensor}")
            module.tensors.append(pair.base.tensor)
            if pair.row_limit is not None:
                module.notes.append(f"compared the first {pair.row_limit} rows (vocabulary sizes differ)")
            if last_use[pair.base.tensor] == i:
                base.release(pair.base.tensor)
                tuned.release(pair.tuned.tensor)
            bar.update(_pair_bytes(base, tuned, pair))
    for module in streamed.modules.values():
        if module.spectral is not None:
            module.spectral = module.spectral.result()
    return streamed


def _spectral_workers(spectral: bool) -> contextlib.AbstractContextManager:
    """`SpectralWorkers` under `spectral`; otherwise nothing (and torch, which they need, is not imported)."""
    if not spectral:
        return contextlib.nullcontext()
    from sfn.stethoscopes.delta.spectral import SpectralWorkers

    return SpectralWorkers()


def _sketch_name() -> str:
    from sfn.stethoscopes.delta.spectral import sketch_dtype

    return str(sketch_dtype()).removeprefix("torch.")


def _pair_copies(base: Checkpoint, tuned: Checkpoint, pair: PartPair) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies of a pair, in their stored dtype, for `spectral_stats` on a worker thread. Its pages are
    released again afterwards: the stream may have released them already, and this read mapped them back."""
    from sfn.registry import read_part

    rows = slice(0, pair.row_limit)
    copies = tuple(read_part(c, p)[rows].clone() for c, p in ((base, pair.base), (tuned, pair.tuned)))
    base.release(pair.base.tensor)
    tuned.release(pair.tuned.tensor)
    return copies


def _pair_bytes(base: Checkpoint, tuned: Checkpoint, pair: PartPair) -> int:
    return pair.base.numel * base.info(pair.base.tensor).itemsize + pair.tuned.numel * tuned.info(pair.tuned.tensor).itemsize


def _table(streamed: _Streamed, plan: _Plan, base_map: ModuleMap, spectral: bool) -> pd.DataFrame:
    rows = []
    for (layer, kind), module in streamed.modules.items():
        row = {"layer": layer, "kind": kind, **module.accumulator.result()}
        notes = list(module.notes)
        if row["nonfinite"]:
            notes.append(f"{row['nonfinite']} element pairs hold NaN or inf and are left out of the statistics")
            plan.notes.append(
                "non-finite values (NaN or inf), left out of the statistics: "
                + ", ".join(f"{name} ({count} elements)" for name, count in module.nonfinite.items())
            )
        if row["base_norm"] == 0:
            notes.append("rel_norm is undefined: the base weights are all zero")
            plan.notes.append(f"{';'.join(dict.fromkeys(module.tensors))}: the base is all zeros, so rel_norm is null")
        if spectral:
            row.update(module.spectral or dict.fromkeys(SPECTRAL_COLUMNS, math.nan))
        row["tensors"] = ";".join(dict.fromkeys(module.tensors))
        row["note"] = "; ".join(dict.fromkeys(notes))
        rows.append(row)
    columns = RESULT_COLUMNS if not spectral else _with_spectral(RESULT_COLUMNS)
    table = pd.DataFrame(rows, columns=columns)
    table["layer"] = table["layer"].astype("Int64")
    return sort_modules(table, base_map.num_layers)


def _with_spectral(columns: list[str]) -> list[str]:
    at = columns.index("numel")
    return [*columns[:at], *SPECTRAL_COLUMNS, *columns[at:]]


def sort_modules(table: pd.DataFrame, num_layers: int) -> pd.DataFrame:
    """Embeddings first, then layers in order, then the final norm and head; kinds in canonical order."""

    def position(row: pd.Series) -> tuple[int, int]:
        kind_index = KINDS.index(row["kind"]) if row["kind"] in KINDS else len(KINDS)
        if pd.notna(row["layer"]):
            return int(row["layer"]), kind_index
        return (-1 if row["kind"] in ("embed", "pos_embed") else num_layers), kind_index

    if table.empty:
        return table
    keys = table.apply(position, axis=1)
    return table.iloc[sorted(range(len(table)), key=lambda i: keys.iloc[i])].reset_index(drop=True)


def kinds_in(table: pd.DataFrame) -> Iterable[str]:
    """The module kinds present in a delta table, in canonical order."""
    present = set(table["kind"])
    return [k for k in KINDS if k in present]
