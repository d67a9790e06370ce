"""The Merge table: the base model with one module kind taken from the tuned model (the paper's
Table 1), each variant evaluated on the benchmark with output levels."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sfn.errors import SfnError
from sfn.eval.grade import LEVELS

# (label, model the weights start from, kinds taken from the tuned model)
MERGE_VARIANTS = (
    ("B", "base", None),
    ("B + R's o", "base", "o"),
    ("B + R's q,k,v", "base", "qkv"),
    ("B + R's mlp", "base", "mlp"),
    ("R", "tuned", None),
)
SAMPLES_FILE = "samples.jsonl"
SAMPLE_COLUMNS = ("id", "question", "output", "reference", "correct", "tokens", "level", "level_reason")
TABLE_FILE = "merge.csv"


@dataclass
class MergeTable:
    table: pd.DataFrame  # one row per variant: accuracy, CI, mean tokens, level counts
    samples: pd.DataFrame  # every output, with its variant, correctness and level


def export_columns(samples: pd.DataFrame) -> list[str]:
    """The columns an exported sample keeps: SAMPLE_COLUMNS, the sample index when there are several
    per problem, and every extracted answer and verdict (e.g. GSM8K's strict and flexible ones)."""
    scored = [column for column in samples.columns if column.startswith(("extracted", "correct_"))]
    extra = (["sample"] if "sample" in samples.columns else []) + scored
    return [*SAMPLE_COLUMNS, *(column for column in extra if column not in SAMPLE_COLUMNS)]


def merge_row(label: str, taken: str | None, summary: dict[str, Any]) -> dict[str, Any]:
    """One row of the Merge table from an evaluation summary (`sfn.evaluate(...).summary`)."""
    return {
        "variant": label,
        "taken_from_tuned": taken or "",
        "accuracy": summary["accuracy"],
        "accuracy_low": summary["accuracy_ci95"][0],
        "accuracy_high": summary["accuracy_ci95"][1],
        "mean_tokens": summary["mean_output_tokens"],
        "samples": summary["samples"],
        "problems": summary.get("problems", summary["samples"]),
        "problems_solved": summary.get("problems_solved"),
        **{f"level_{level}": summary["levels"].get(level, 0) for level in LEVELS},
    }


def merge_table(base: Any, tuned: Any, tokenizer: Any, evaluation: dict[str, Any], grader: Any, out: Path,
                advance: Callable[[], None] = lambda: None) -> MergeTable:
    """Evaluate B, the three merges and R (loaded models sharing `tokenizer`) with the same settings
    (`sfn.evaluate` keyword arguments) and grader; write merge.csv and samples.jsonl to `out`."""
    from sfn.stethoscopes.surgery import merged

    def variant(start: str, taken: str | None) -> tuple[ContextManager[Any], Any]:
        model = base if start == "base" else tuned
        return (merged(base, tuned, taken) if taken else contextlib.nullcontext()), (model, tokenizer)

    return _evaluated_table(variant, evaluation, grader, out, advance)


def merge_table_in_engine(engine: Any, tuned: str | os.PathLike, evaluation: dict[str, Any], grader: Any, out: Path,
                          advance: Callable[[], None] = lambda: None) -> MergeTable:
    """The same table from one running generation engine over B (`VLLMBackend(B)`): each variant's
    tensors (R's modules, or all of R for the row R) are loaded into the engine and B's own are loaded
    back after it (`engine.variant`), instead of starting an engine per variant, which on vLLM's CPU
    build costs ~700x a switch (benchmarks/README.md)."""
    from sfn.stethoscopes.surgery.edits import merge_edits

    missing = [name for name in ("variant", "base_source", "generate") if not hasattr(engine, name)]
    if missing:
        raise SfnError(f"engine {type(engine).__name__} has no {', '.join(missing)}: give a backend that switches weights "
                       "in place, such as sfn.eval.backends.vllm.VLLMBackend over B's directory")

    def variant(start: str, taken: str | None) -> tuple[ContextManager[Any], Any]:
        if start == "base" and not taken:
            return contextlib.nullcontext(), engine
        return engine.variant(merge_edits(engine.base_source, tuned, taken or "all")), engine

    return _evaluated_table(variant, evaluation, grader, out, advance)


def _evaluated_table(variant: Callable[[str, str | None], tuple[ContextManager[Any], Any]], evaluation: dict[str, Any],
                     grader: Any, out: Path, advance: Callable[[], None]) -> MergeTable:
    """Evaluate every row of MERGE_VARIANTS inside its `variant(start, taken)` context, on the model
    it names; write the table and the samples."""
    from sfn.eval import evaluate

    rows, samples = [], []
    for label, start, taken in MERGE_VARIANTS:
        edit, model = variant(start, taken)
        with edit:
            result = evaluate(model, grader=grader, **evaluation)
        rows.append(merge_row(label, taken, result.summary))
        samples.append(result.samples[export_columns(result.samples)].assign(variant=label))
        advance()
    out.mkdir(parents=True, exist_ok=True)
    table, outputs = pd.DataFrame(rows), pd.concat(samples, ignore_index=True)
    table.to_csv(out / TABLE_FILE, index=False)
    outputs.to_json(out / SAMPLES_FILE, orient="records", lines=True, force_ascii=False)
    return MergeTable(table, outputs)
