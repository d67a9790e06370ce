"""`sfn destroy --sweep`: destroy each module kind with each method (in each layer range) and record
what the model then says to a few prompts - the Destruction Stethoscope's table (paper Table 3).

The model is loaded once; every configuration is applied in memory and restored exactly. Outputs are
graded with the evaluation package's level grader (levels I-IV, the undamaged model as fluency
reference) when it is installed, and always measured by simple degeneration statistics.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from sfn.errors import SfnError, SfnErrors, argument
from sfn.io.load_model import load_model
from sfn.registry import LINEAR_KINDS, Selector, module_map
from sfn.stethoscopes.surgery.destroy import METHODS, selected_for_destruction
from sfn.stethoscopes.surgery.inmemory import destroyed
from sfn.io.sources import ModelTensors

REPEAT_N = 3


def distinct_ratio(tokens: Sequence[int]) -> float:
    """Distinct tokens over all tokens (1.0: no token repeats; near 0: one token looped)."""
    return len(set(tokens)) / len(tokens) if tokens else 0.0


def repeated_ngram_share(tokens: Sequence[int], n: int = REPEAT_N) -> float:
    """Share of n-grams that already occurred earlier in the same output (loops score near 1)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def generate(model: torch.nn.Module, tokenizer: Any, prompt: str, max_new_tokens: int) -> list[int]:
    """Greedy continuation of `prompt` (through the chat template when the tokenizer has one)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    else:
        text = prompt
    encoded = tokenizer(text, return_tensors="pt").to(model.device)
    if encoded["input_ids"].shape[1] == 0:
        raise SfnError(f"the prompt {prompt!r} encodes to no tokens with this tokenizer")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
    return output[0, encoded["input_ids"].shape[1] :].tolist()


@dataclass(frozen=True)
class SweepConfig:
    method: str  # "none" for the undamaged model
    kind: str
    layers: str | None

    @property
    def selector(self) -> str:
        target = "all" if self.method == "remove" else self.kind
        return f"{target}@{self.layers}" if self.layers else target


def sweep_configs(
    module_kinds: Sequence[str], methods: Sequence[str], layer_ranges: Sequence[str | None]
) -> list[SweepConfig]:
    configs = [SweepConfig("none", "-", None)]
    for method in methods:
        if method == "remove":
            configs += [SweepConfig("remove", "-", layers) for layers in layer_ranges]
        else:
            configs += [SweepConfig(method, kind, layers) for kind in module_kinds for layers in layer_ranges]
    return configs


def _default_grader(model: torch.nn.Module, tokenizer: Any) -> Any:
    try:
        from sfn.eval.grade import Grader
    except ImportError:
        return None
    return Grader(reference=(model, tokenizer))


def sweep(
    model: str | os.PathLike | torch.nn.Module,
    prompts: Sequence[str],
    *,
    tokenizer: Any = None,
    kinds: Sequence[str] | None = None,
    methods: Sequence[str] = ("zero", "reinit"),
    layers: Sequence[str | None] = (None,),
    references: Sequence[str | None] | None = None,
    max_new_tokens: int = 48,
    std: float = 0.02,
    seed: int = 0,
    grader: Any = "auto",
    allow_pickle: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per (method, kind, layer range, prompt): the output text and how degenerate it is.

    `kinds` defaults to every linear module kind the model has (q, k, v, o, gate, up, down, ...);
    `remove` ignores kinds and drops each layer range whole. `grader`: "auto" (the level grader of
    `sfn.eval` when available), None (statistics only), or an object with `grade(prompt, output, reference)`.
    `progress` draws a bar over the configurations.
    """
    if not prompts:
        raise SfnError("the sweep needs at least one prompt")
    if references is not None and len(references) != len(prompts):
        raise SfnError(f"{len(references)} references for {len(prompts)} prompts; give one per prompt or none")
    if not isinstance(model, torch.nn.Module):
        model, tokenizer = load_model(model, allow_pickle=allow_pickle)
    if tokenizer is None:
        raise SfnError("the sweep generates text: pass the model's tokenizer")
    base_map = module_map(ModelTensors(model), warn=False)
    present = {p.kind for p in base_map.parts}
    kinds = list(kinds) if kinds else [k for k in LINEAR_KINDS if k in present]
    configs = sweep_configs(kinds, methods, list(layers) or [None])
    problems = [f"unknown method {m!r}: use {', '.join(METHODS)}" for m in methods if m not in METHODS]
    # An unset shell variable must not widen the sweep to every layer.
    problems += [f"layer range {text!r} is empty: give layers like 5-30" for text in layers if text is not None and not text.strip()]
    if "remove" in methods and None in layers:
        problems.append(f"remove drops layers: give layer ranges ({argument('layers', '5-30')})")
    for config in configs[1:]:
        if config.method not in METHODS or (config.method == "remove" and config.layers is None):
            continue  # already reported above
        try:
            selected_for_destruction(ModelTensors(model), Selector.parse(config.selector), config.method, base_map)
        except SfnError as exc:
            problems.append(f"{config.method} {config.selector}: {exc}")
    if problems:
        raise SfnErrors(problems, "cannot run the sweep")
    rows = []
    for config in tqdm(configs, desc="sfn sweep", unit="config", disable=not progress):
        edit = destroyed(model, config.selector, config.method, std=std, seed=seed) if config.method != "none" else None
        try:
            for index, prompt in enumerate(prompts):
                tokens = generate(model, tokenizer, prompt, max_new_tokens)
                rows.append(
                    {
                        "method": config.method,
                        "kind": config.kind,
                        "layers": config.layers or "all",
                        "select": config.selector if edit else "",
                        "prompt": index,
                        "output": tokenizer.decode(tokens, skip_special_tokens=True),
                        "tokens": len(tokens),
                        "distinct_ratio": round(distinct_ratio(tokens), 4),
                        "repeated_3gram_share": round(repeated_ngram_share(tokens), 4),
                    }
                )
        finally:
            if edit is not None:
                edit.restore()
    frame = pd.DataFrame(rows)
    grader = _default_grader(model, tokenizer) if grader == "auto" else grader
    if grader is not None:
        graded = [grader.grade(prompts[r["prompt"]], r["output"], references[r["prompt"]] if references else None) for r in rows]
        frame["level"] = [g.level for g in graded]
        frame["reason"] = [g.reason for g in graded]
    return frame
