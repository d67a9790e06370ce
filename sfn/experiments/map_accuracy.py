"""`sfn map --accuracy BENCH --top N`: the map's best cells, and B and R, evaluated on a benchmark by the
eval runner (`sfn.evaluate`), on the one loaded model edited and restored in place, so that the map's
teacher-forced claims are checked by accuracy where it matters.

A cell's rank is its map score averaged over the probes: `recovered_share` for transplants, the KL to
the undamaged model for destructions (`kl_to_base`, or `kl_to_tuned` with `on="tuned"`). The map agrees
with accuracy when the cells it ranks higher recover more accuracy (transplant) or lose more (destruction).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sfn.errors import SfnError, SfnErrors
from sfn.experiments.cells import DESTRUCTION_MODES, Cell
from sfn.experiments.map_outputs import score_column

DEFAULT_TOP = 3
ACCURACY_COLUMNS = ["cell", "mode", "kind", "layers", "map_rank", "ranked_by", "map_score", "accuracy", "ci_low",
                    "ci_high", "samples", "folder"]
# Settings the map decides itself: the model and its backend (the loaded one, edited in place), where the
# runs go (write_map writes them), their format and seed.
FIXED_SETTINGS = ("benchmark", "out", "prompt_format", "seed", "progress", "backend", "backend_args", "device", "allow_pickle")


@dataclass(frozen=True)
class AccuracyRequest:
    benchmark: str
    top: int
    settings: dict[str, Any]  # EvalConfig fields (data, limit, max_new_tokens, batch_size, ...)


def check_accuracy(accuracy: str | None, top: int | None, settings: dict[str, Any] | None, prompt_format: str,
                   seed: int, problems: list[str]) -> AccuracyRequest | None:
    """The accuracy request, or None; its problems are appended to `problems` (before any work)."""
    settings = dict(settings or {})
    if accuracy is None:
        if top is not None:
            problems.append("--top N needs --accuracy BENCH: the benchmark the N best cells are evaluated on")
        if settings:
            problems.append(f"accuracy settings ({', '.join(sorted(settings))}) need --accuracy BENCH")
        return None
    top = DEFAULT_TOP if top is None else top
    if top < 1:
        problems.append(f"--top must be at least 1 cell, got {top}")
    fixed = sorted(set(settings) & set(FIXED_SETTINGS))
    if fixed:
        problems.append(f"accuracy settings {', '.join(fixed)} are not for the map to pass on: it evaluates its own loaded "
                        "model with the hf backend, with its --accuracy benchmark, --format and --seed, in OUT/accuracy")
        settings = {key: value for key, value in settings.items() if key not in FIXED_SETTINGS}
    try:
        config = eval_config(accuracy, settings, prompt_format, seed)
        resolved = config.resolved()
        if config.data or resolved.benchmark.data:  # a local file is read now; a hub benchmark when it is evaluated
            from sfn.eval.benchmarks import load_samples

            load_samples(resolved.benchmark, config.data, config.limit)
    except SfnErrors as error:
        problems += [f"--accuracy {accuracy}: {_flags(problem)}" for problem in error.problems]
    except SfnError as error:
        problems.append(f"--accuracy {accuracy}: {_flags(str(error))}")
    return AccuracyRequest(accuracy, top, settings)


def _flags(message: str) -> str:
    """An eval setting's message naming the map's flag for it (--limit is --accuracy-limit here)."""
    return message.replace("(--", "(--accuracy-")


def eval_config(benchmark: str, settings: dict[str, Any], prompt_format: str, seed: int) -> Any:
    from sfn.eval.config import EvalConfig

    # Levels are not graded: the grader's embedder would be one more model to load (or download).
    return EvalConfig(benchmark=benchmark, prompt_format=prompt_format, seed=seed, grade_levels=False,
                      progress=False).with_overrides(settings)


def best_cells(table: pd.DataFrame, cells: list[Cell], on: str, top: int) -> list[tuple[Cell, int, str, float]]:
    """(cell, rank, ranked_by, score) of the `top` best window cells of each mode, best first."""
    by_key = {(c.mode, c.kind, c.layers): c for c in cells}
    windows = table[(table["layers"] != "all") & (table["mode"] != "alpha")]
    chosen = []
    for mode, rows in windows.groupby("mode", sort=False):
        column = score_column(mode, on)
        scores = rows.groupby(["kind", "layers"], sort=False)[column].mean().reset_index()
        ranked = scores.sort_values(column, ascending=False, kind="stable").head(top)
        chosen += [(by_key[(mode, row.kind, row.layers)], rank, column, float(getattr(row, column)))
                   for rank, row in enumerate(ranked.itertuples(), start=1)]
    return chosen


def evaluate_cells(request: AccuracyRequest, chosen: list[tuple[Cell, int, str, float]], models: dict[str, Any],
                   tokenizer: Any, on: str, prompt_format: str, seed: int,
                   edit: Callable[[Cell], AbstractContextManager], progress: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The accuracy table (B, R, then the chosen cells) and each run's `EvalResult` by folder name."""
    from tqdm.auto import tqdm

    from sfn.eval.run import evaluate

    config = eval_config(request.benchmark, request.settings, prompt_format, seed)
    jobs: list[tuple[str, Cell | None, int | None, str | None, float]] = [("B", None, None, None, np.nan),
                                                                          ("R", None, None, None, np.nan)]
    jobs += [(f"{cell.mode} {cell.selector}", cell, rank, column, score) for cell, rank, column, score in chosen]
    rows, runs = [], {}
    for name, cell, rank, column, score in tqdm(jobs, desc=f"accuracy {request.benchmark}", unit="run", disable=not progress):
        target = "tuned" if name == "R" or (cell is not None and cell.mode in DESTRUCTION_MODES and on == "tuned") else "base"
        with edit(cell) if cell is not None else nullcontext():
            result = evaluate((models[target], tokenizer), config)
        folder = _folder(name)
        runs[folder] = result
        low, high = result.summary["accuracy_ci95"]
        rows.append({"cell": name, "mode": cell.mode if cell else ("base" if name == "B" else "tuned"),
                     "kind": cell.kind if cell else None, "layers": cell.layers if cell else None, "map_rank": rank,
                     "ranked_by": column, "map_score": score, "accuracy": result.summary["accuracy"], "ci_low": low,
                     "ci_high": high, "samples": len(result.samples), "folder": f"accuracy/{folder}"})
    return pd.DataFrame(rows, columns=ACCURACY_COLUMNS).astype({"map_rank": "Int64"}), runs


def _folder(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name)


def agreement(accuracy: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per mode: the Spearman correlation of the map's score with accuracy, signed so that +1 means full
    agreement (transplants ranked higher recover more accuracy, destructions ranked higher lose more),
    and a sentence saying so."""
    found = {}
    reference = dict(zip(accuracy["cell"], accuracy["accuracy"]))
    for mode, rows in accuracy[accuracy["map_rank"].notna()].groupby("mode", sort=False):
        sign = -1.0 if mode in DESTRUCTION_MODES else 1.0
        rho = np.nan
        if len(rows) > 1 and rows["accuracy"].nunique() > 1 and rows["map_score"].nunique() > 1:
            rho = sign * rows["map_score"].rank().corr(rows["accuracy"].rank())
        top = rows.iloc[0]
        said = (f"{mode}: the map's top cell {top['kind']}@{top['layers']} has accuracy {top['accuracy']:.3f} "
                f"(B {reference['B']:.3f}, R {reference['R']:.3f}); ")
        if not np.isfinite(rho):
            said += f"the {len(rows)} evaluated cells cannot be ranked by accuracy (too few, or equal accuracies)"
        else:
            verdict = "agrees with" if rho > 0 else "does not agree with"
            said += f"accuracy {verdict} the map's ranking (signed rank correlation {rho:+.2f} over {len(rows)} cells)"
        found[mode] = {"rank_correlation": None if not np.isfinite(rho) else float(rho),
                       "agrees": None if not np.isfinite(rho) else bool(rho > 0), "text": said}
    return found
