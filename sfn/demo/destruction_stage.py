"""Destruction: each linear module kind of the tuned model zeroed or re-initialised over a middle
range of layers (the paper's Table 3), its answers to a few benchmark problems graded I-IV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sfn.demo.pair import DemoPair

METHODS = ("zero", "reinit")
TABLE_FILE = "destruction.csv"


def middle_layers(num_layers: int) -> str:
    """The layers between the first and last sixth (at least one layer kept at each end): the paper
    destroys blocks 5-30 of 64 because the ends make every output nonsense."""
    margin = max(1, num_layers // 6)
    if num_layers - 2 * margin < 1:
        return f"0-{num_layers - 1}"
    return f"{margin}-{num_layers - 1 - margin}"


@dataclass
class DestructionStage:
    layers: str
    outputs: pd.DataFrame  # one row per (method, kind, prompt): output, level, reason


def run_destruction(pair: DemoPair, evaluation: dict[str, Any], grader: Any, prompts: int, out: Path) -> DestructionStage:
    """`sfn.experiments.sweep` over every linear kind x (zero, reinit) on the tuned model; writes destruction.csv."""
    from sfn.eval.benchmarks import load_samples
    from sfn.eval.prompts import build_prompt
    from sfn.experiments import sweep

    samples = load_samples(pair.benchmark, pair.benchmark_data, prompts)
    instruction = pair.benchmark.instruction
    texts = [build_prompt(s.question, pair.tokenizer, prompt_format=evaluation["prompt_format"], instruction=instruction)
             for s in samples]
    layers = middle_layers(pair.num_layers)
    outputs = sweep(pair.tuned, texts, tokenizer=pair.tokenizer, methods=METHODS, layers=[layers],
                    references=[s.reference for s in samples], prompt_format="raw",  # formatted above
                    max_new_tokens=evaluation["max_new_tokens"], batch_size=evaluation["batch_size"], grader=grader,
                    progress=False)  # the demo draws one bar per stage
    outputs["question"] = [samples[index].question for index in outputs["prompt"]]
    out.mkdir(parents=True, exist_ok=True)
    outputs.to_csv(out / TABLE_FILE, index=False)
    return DestructionStage(layers, outputs)
