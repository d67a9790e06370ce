"""Freeze: fine-tune the base model on the tuned model's training data with only some modules
trainable (presets emb+head, emb+head+o, emb+head+qkvo, all), compared on the benchmark."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from transformers import TrainerCallback

from sfn.demo.pair import DemoPair

PRESETS = ("emb+head", "emb+head+o", "emb+head+qkvo", "all")


@dataclass
class FreezeStage:
    table: pd.DataFrame  # `sfn.experiments.compare`'s table: one row per preset
    losses: dict[str, pd.DataFrame]  # preset -> step, loss
    loss_figure: Path | None


class StepDone(TrainerCallback):
    """Advances the demo's Freeze bar once per optimizer step of any preset."""

    def __init__(self, advance: Callable[[], None]):
        self.advance = advance

    def on_step_end(self, args, state, control, **kwargs):
        self.advance()


def run_freeze(pair: DemoPair, evaluation: dict[str, Any], training: dict[str, Any], out: Path,
               advance: Callable[[], None] = lambda: None) -> FreezeStage:
    """`sfn.experiments.compare` from B over the presets (each run on its own copy), scored on the benchmark."""
    from sfn.experiments import compare
    from sfn.stethoscopes.freeze.data import DEFAULT_RESPONSE_TEMPLATE

    steps = training["max_steps"]
    table, results = compare(
        (pair.base, pair.tokenizer), list(PRESETS), str(pair.train_data), out,
        prompt_format=evaluation["prompt_format"],
        instruction=pair.benchmark.instruction,
        response_template=pair.response_template or DEFAULT_RESPONSE_TEMPLATE,
        save_steps=steps + 1,  # no checkpoints: a demo run is short and never resumed
        eval_benchmark=pair.benchmark.name,
        eval_data=pair.benchmark_data,
        eval_limit=evaluation["limit"],
        eval_max_new_tokens=evaluation["max_new_tokens"],
        callbacks=[StepDone(advance)],
        **training,
    )
    losses = {preset: result.loss[["step", "loss"]] for preset, result in zip(PRESETS, results)}
    figure = out / "loss.png"
    return FreezeStage(table, losses, figure if figure.is_file() else None)
