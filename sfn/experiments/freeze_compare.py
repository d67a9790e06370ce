"""The Freeze comparison, `compare(...)`: several Freeze runs on the same data and seed, side by side
(the paper's Table 2), each scored on the benchmark when asked."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from sfn.errors import SfnError, argument
from sfn.stethoscopes.freeze.report import compare_table, format_table
from sfn.stethoscopes.freeze.train import FreezeResult, freeze

COMPARE_CSV = "compare.csv"
COMPARE_MD = "compare.md"


def run_name(train: str) -> str:
    """A folder name for a preset or selector ('emb+head+o' stays as it is)."""
    return re.sub(r"[^\w+.@-]+", "_", train.strip()).strip("_") or "run"


def compare(
    model: Any, presets: list[str], data: str, out: str | os.PathLike, *, tokenizer: Any = None, **settings: Any
) -> tuple[pd.DataFrame, list[FreezeResult]]:
    """Run `freeze` once per preset (OUT/<preset>/), each from the same initial weights, and write
    OUT/compare.csv, OUT/compare.md and the overlaid OUT/loss.png. Returns the table and the runs.

    A model given as a path is loaded afresh for every run; an in-memory model is copied for each.
    An interrupted run (Ctrl-C) ends the comparison: the table then holds the runs so far.
    """
    if not presets:
        raise SfnError(f"{argument('presets', flag='--compare')} needs at least one preset or selector")
    names = [run_name(preset) for preset in presets]
    if len(set(names)) != len(names):
        raise SfnError(f"{argument('presets', flag='--compare')}: presets {presets} would share an output folder; name each once")
    out = Path(out)
    results = []
    for preset, name in zip(presets, names):
        if isinstance(model, (str, os.PathLike)):
            source = model
        else:
            loaded, loaded_tokenizer = model if isinstance(model, tuple) else (model, tokenizer)
            source = (copy.deepcopy(loaded), loaded_tokenizer)
        results.append(freeze(source, preset, data, out / name, **settings))
        if results[-1].interrupted:  # Ctrl-C stops the comparison, not just the current run
            break
    table = compare_table([result.metrics for result in results])
    table.to_csv(out / COMPARE_CSV, index=False)
    (out / COMPARE_MD).write_text(format_table(table) + "\n")
    return table, results
