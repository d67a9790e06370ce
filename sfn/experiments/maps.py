"""Transplant and destruction maps: for every module kind x layer window, how much of R's behaviour
transplanting it into B recovers, and how much destroying it costs, by teacher-forced divergence.

One loaded model is edited in place and restored exactly for each cell (`sfn.stethoscopes.surgery`'s
in-memory surgery); each cell is one forward pass per probe batch, started at the cell's first layer
(`divergence.PrefixCache`). Scores, per cell and probe, over the probe's answer tokens:
`kl_to_tuned` = KL(R || variant), `kl_to_base` = KL(B || variant) (mean per token), and for transplants
`recovered_share` = 1 - KL(R || B') / KL(R || B). With `accuracy`, the best cells and B and R are then
evaluated on a benchmark (`map_accuracy`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sfn.errors import SfnError, SfnErrors
from sfn.experiments.cells import DEFAULT_ALPHAS, DESTRUCTION_MODES, Cell, plan_cells
from sfn.experiments.map_accuracy import agreement, best_cells, check_accuracy, evaluate_cells
from sfn.experiments.map_outputs import conclusions, delta_change
from sfn.experiments.divergence import (
    PrefixCache,
    ProbeBatch,
    answer_log_probs,
    bootstrap_mean,
    probe_batches,
    token_kl,
    token_mean,
)
from sfn.experiments.probes import Probe, build_probe, check_probe_names
from sfn.io.guard import guard_output
from sfn.io.sources import ModelSource, is_loaded, opened, source_name
from sfn.registry import module_map, select
from sfn.stethoscopes.surgery import destroyed, merged
from sfn.stethoscopes.surgery.inmemory import decoder_layers

COLUMNS = ["mode", "kind", "layers", "alpha", "probe", "kl_to_base", "kl_to_tuned", "kl_ci_low", "kl_ci_high", "ci_of",
           "recovered_share", "tokens", "delta_rel_change"]


@dataclass
class MapResult:
    """`.table`: one row per cell and probe (`COLUMNS`); `.summary`: top cells, the probes' B-R gap,
    the rank correlation of Delta's change with the map, and notes. With `accuracy=`: `.accuracy`, one
    row per evaluated model (B, R, the best cells; `map_accuracy.ACCURACY_COLUMNS`) and `.accuracy_runs`,
    each one's `EvalResult` by folder name."""

    table: pd.DataFrame
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    accuracy: pd.DataFrame | None = None
    accuracy_runs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _ProbeRun:
    probe: Probe
    batches: list[ProbeBatch]
    base: list[torch.Tensor]  # B's answer-token log-probs per batch
    tuned: list[torch.Tensor]
    sequence: np.ndarray
    gap: float  # KL(R || B), the transplant's starting point


MAP_DTYPES = ("float32", "bfloat16", "float16", "auto")


def map(  # noqa: A001 - `sfn.map` is the documented name
    base: ModelSource,
    tuned: ModelSource,
    *,
    modes: Sequence[str] = ("transplant", "zero"),
    kinds: str | None = None,
    window: int = 1,
    windows: str | None = None,
    probes: Sequence[str] = ("math", "conversation"),
    on: str = "base",
    alpha_curve: str | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    tokenizer: Any = None,
    prompt_format: str = "auto",
    max_new_tokens: int = 96,
    probe_limit: int | None = None,
    batch_tokens: int = 4096,
    reuse_prefix: bool = True,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    allow_pickle: bool = False,
    accuracy: str | None = None,
    top: int | None = None,
    accuracy_settings: dict[str, Any] | None = None,
    dtype: str = "float32",
) -> MapResult:
    """The map of `base` and `tuned` (paths, hub ids or loaded models of one architecture).

    `modes`: transplant (B with R's kind@window), zero / reinit / remove (the kind@window destroyed, in
    B, or in R with `on="tuned"`; reinit uses `seed` as `sfn destroy` does). `alpha_curve`: a selector
    whose tensors are blended W_B + a (W_R - W_B) for each of `alphas`. Probes: 'math' (R's greedy
    answers to built-in problems), 'conversation' (B's answers to built-in prompts) or JSONL files of
    {prompt, text}; generated texts are cached in `cache_dir`. `accuracy`: a benchmark (as `sfn.evaluate`'s)
    on which the `top` (default 3) best window cells of each mode, by `recovered_share` for transplants and
    by the KL to the undamaged model for destructions (averaged over the probes), and B and R, are
    evaluated; `accuracy_settings` are further `EvalConfig` settings (data, limit, max_new_tokens, ...).
    `dtype`: what models given as paths or hub ids are loaded and computed in, float32 by default even for
    bf16 checkpoints, because a cell's KL is a small difference that half-precision arithmetic drowns
    (on SmolLM2-135M with a 1% update, the bf16 map of the same weights had a Spearman correlation of 0.61
    with the fp32 one: benchmarks/README.md); "auto" keeps the checkpoint's dtype (half the memory and
    time). Loaded models are used as they are; a note says when the map ran in half precision.
    """
    problems = check_probe_names(list(probes))
    if on not in ("base", "tuned"):
        problems.append(f"--on must be 'base' or 'tuned', not {on!r}")
    if max_new_tokens < 1:
        problems.append(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    request = check_accuracy(accuracy, top, accuracy_settings, prompt_format, seed, problems)
    if dtype not in MAP_DTYPES:
        problems.append(f"--dtype must be one of {', '.join(MAP_DTYPES)}, not {dtype!r}")
    with opened(base, allow_pickle=allow_pickle) as base_ck, opened(tuned, allow_pickle=allow_pickle) as tuned_ck:
        base_map, tuned_map = module_map(base_ck, warn=False), module_map(tuned_ck, warn=False)
        if base_map.num_layers != tuned_map.num_layers or base_map.model_type != tuned_map.model_type:
            problems.append(f"BASE ({base_map.model_type}, {base_map.num_layers} layers) and TUNED ({tuned_map.model_type}, "
                            f"{tuned_map.num_layers} layers) are not one architecture: a map compares a model with its fine-tune")
        cells = plan_cells(base_map, modes=list(modes), kinds=kinds, window=window, windows=windows,
                           alpha_curve=alpha_curve, alphas=list(alphas), problems=problems)
        if alpha_curve:
            _check_selector(base_map, alpha_curve, problems)
        num_layers = base_map.num_layers
    if request is not None and not any(c.mode != "alpha" and c.layers != "all" for c in cells):
        problems.append("--accuracy evaluates the map's best layer-window cells (of --modes), and this map has none")
    if cache_dir is not None:  # before any work: the probes' cache may not land in a model
        inputs = [s for s in (base, tuned) if isinstance(s, (str, os.PathLike)) and Path(s).exists()]
        try:
            guard_output(cache_dir, inputs=inputs, replace=False)
        except SfnError as error:
            problems.append(str(error))
    if problems:
        raise SfnErrors(problems, "cannot make the map")

    base_model, base_tokenizer = _loaded(base, allow_pickle, dtype)
    tuned_model, tuned_tokenizer = _loaded(tuned, allow_pickle, dtype)
    tokenizer = tokenizer or base_tokenizer or tuned_tokenizer
    if tokenizer is None:
        raise SfnError("neither model has a tokenizer: pass tokenizer= (a loaded tokenizer of the pair)")
    from sfn.eval.prompts import resolve_format

    fmt = resolve_format(prompt_format, tokenizer)
    runs = []
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    for spec in probes:
        probe = build_probe(spec, tokenizer, {"base": base_model, "tuned": tuned_model}, prompt_format=fmt,
                            max_new_tokens=max_new_tokens, cache_dir=None if cache_dir is None else Path(cache_dir),
                            limit=probe_limit)
        batches = probe_batches(probe, pad_id, batch_tokens)
        base_lp = [answer_log_probs(base_model, b) for b in batches]
        tuned_lp = [answer_log_probs(tuned_model, b) for b in batches]
        sequence = np.concatenate([b.sequence for b in batches])
        gap = token_mean(torch.cat([token_kl(t, b) for t, b in zip(tuned_lp, base_lp)]).numpy(), sequence)
        runs.append(_ProbeRun(probe, batches, base_lp, tuned_lp, sequence, gap))

    notes = _precision_notes(base_model, tuned_model)
    working = {"base": base_model, "tuned": tuned_model}
    prefixes = _prefixes(working, cells, runs, num_layers, on, reuse_prefix, notes)
    rows = []
    from tqdm.auto import tqdm

    for cell in tqdm(cells, desc="map", unit="cell", disable=not progress):
        target = on if cell.mode in DESTRUCTION_MODES else "base"
        model = working[target]
        with _edit(model, cell, tuned_model, seed):
            for run in runs:
                rows.append(_score(cell, run, model, prefixes.get((target, run.probe.name)), target))
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "delta_rel_change"])
    from sfn.stethoscopes.delta import delta

    changed = delta(base_model, tuned_model, progress=False).table  # the loaded pair: no second read of the checkpoints
    table["delta_rel_change"] = delta_change(table, changed, num_layers)
    summary = {"base": _name(base), "tuned": _name(tuned), "on": on, "num_layers": num_layers,
               "probes": {run.probe.name: {"source": run.probe.source, "sequences": len(run.probe.sequences),
                                           "tokens": run.probe.tokens, "kl_tuned_to_base": run.gap} for run in runs},
               "prompt_format": fmt, "seed": seed, "prefix_reuse": sorted(f"{t}/{p}" for t, p in prefixes),
               **conclusions(table, on)}
    result = MapResult(table, summary, notes)
    if request is not None:
        chosen = best_cells(table, cells, on, request.top)

        def edit(cell: Cell) -> Any:
            return _edit(working[on if cell.mode in DESTRUCTION_MODES else "base"], cell, tuned_model, seed)

        result.accuracy, result.accuracy_runs = evaluate_cells(request, chosen, working, tokenizer, on, prompt_format,
                                                               seed, edit, progress)
        summary["accuracy"] = {"benchmark": request.benchmark, "top": request.top,
                               "cells": result.accuracy.drop(columns="folder").to_dict("records"),
                               "agreement": agreement(result.accuracy)}
    return result


def _check_selector(module_map_: Any, selector: str, problems: list[str]) -> None:
    found: list[str] = []
    try:
        parts = select(module_map_, selector)
    except SfnError as error:
        found.append(f"--alpha-curve {selector!r}: {error}")
        parts = [None]
    if not parts:
        found.append(f"--alpha-curve {selector!r} selects no module of the model")
    problems += found


def _loaded(source: ModelSource, allow_pickle: bool, dtype: str) -> tuple[torch.nn.Module, Any]:
    if is_loaded(source):
        return source.eval(), None
    from sfn.io.load_model import load_model

    return load_model(source, allow_pickle=allow_pickle, dtype=None if dtype == "auto" else getattr(torch, dtype))


def _precision_notes(*models: torch.nn.Module) -> list[str]:
    half = sorted({str(p.dtype).removeprefix("torch.") for m in models for p in m.parameters()
                   if p.dtype in (torch.bfloat16, torch.float16)})
    if not half:
        return []
    return [f"the map ran in {' and '.join(half)}: its KLs carry that arithmetic's rounding noise, which can be as large "
            "as a single cell's effect (on SmolLM2-135M with a 1% update the bf16 map of the same weights ranked the "
            "cells with a Spearman correlation of 0.61 to the fp32 one); for the exact map load the models in float32 "
            "(`sfn map --dtype float32`, the default for paths)"]


def _name(source: ModelSource) -> str:
    return source_name(source)


def _prefixes(working: dict[str, torch.nn.Module], cells: list[Cell], runs: list[_ProbeRun], num_layers: int, on: str,
              reuse: bool, notes: list[str]) -> dict[tuple[str, str], PrefixCache]:
    """A prefix cache per (edited model, probe) for the cells that start above layer 0."""
    caches: dict[tuple[str, str], PrefixCache] = {}
    if not reuse:
        return caches
    for target in ("base", "tuned"):
        starts = [c.start for c in cells if c.mode != "remove" and c.start > 0
                  and (on if c.mode in DESTRUCTION_MODES else "base") == target]
        if not starts:
            continue
        holder, attribute, layers = decoder_layers(working[target], num_layers)
        for run in runs:
            cache = PrefixCache(working[target], layers, holder, attribute, run.batches, starts)
            if cache.exact:
                caches[(target, run.probe.name)] = cache
            else:
                notes.append(f"a pass started at a layer of {target} did not give the whole pass's bits on probe "
                             f"{run.probe.name}: every cell there ran the whole model")
    return caches


def _edit(model: torch.nn.Module, cell: Cell, tuned_model: torch.nn.Module, seed: int):
    if cell.mode == "transplant":
        return merged(model, tuned_model, cell.selector)
    if cell.mode == "alpha":
        return merged(model, tuned_model, cell.selector, alpha=cell.alpha)
    return destroyed(model, cell.selector, cell.mode, seed=seed)


def _score(cell: Cell, run: _ProbeRun, model: torch.nn.Module, prefix: PrefixCache | None, target: str) -> dict[str, Any]:
    to_base, to_tuned = [], []
    for index, batch in enumerate(run.batches):
        if prefix is not None and cell.start > 0 and cell.mode != "remove":
            variant = prefix.log_probs(index, cell.start)
        else:
            variant = answer_log_probs(model, batch)
        to_base.append(token_kl(run.base[index], variant))
        to_tuned.append(token_kl(run.tuned[index], variant))
    kl_base, kl_tuned = torch.cat(to_base).numpy(), torch.cat(to_tuned).numpy()
    ci_of = "kl_to_base" if cell.mode in DESTRUCTION_MODES and target == "base" else "kl_to_tuned"
    low, high = bootstrap_mean(kl_base if ci_of == "kl_to_base" else kl_tuned, run.sequence)
    kl_to_base, kl_to_tuned = token_mean(kl_base, run.sequence), token_mean(kl_tuned, run.sequence)
    recovered = 1.0 - kl_to_tuned / run.gap if cell.mode in ("transplant", "alpha") and run.gap > 0 else np.nan
    return {"mode": cell.mode, "kind": cell.kind, "layers": cell.layers, "alpha": cell.alpha, "probe": run.probe.name,
            "kl_to_base": kl_to_base, "kl_to_tuned": kl_to_tuned, "kl_ci_low": low, "kl_ci_high": high, "ci_of": ci_of,
            "recovered_share": recovered, "tokens": len(kl_base)}
