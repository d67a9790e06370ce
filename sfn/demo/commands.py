"""The `sfn` commands that redo each stage of a demo by hand, with the demo's exact settings.

They are written into demo.json and the report beside the numbers they reproduce. Outputs of the
commands go under OUT/reproduce/ so they never touch what the demo wrote. Small models ran with one
intra-op thread (see `run._threads_for`); their commands start with OMP_NUM_THREADS=1 so float
reductions add up in the same order and greedy decoding picks the same tokens.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sfn.demo.pair import DemoPair

REPRODUCE_DIR = "reproduce"


def join(words: list[Any]) -> str:
    return " ".join(shlex.quote(str(word)) for word in words)


def _threads(single_thread: bool) -> str:
    return "OMP_NUM_THREADS=1 " if single_thread else ""


def eval_words(model: str | Path, pair: DemoPair, evaluation: dict[str, Any], out: Path, *, limit: int | None = None) -> list[Any]:
    """`sfn eval` with the settings of `evaluation` (`DemoSettings.evaluation`), graded with B as reference."""
    words: list[Any] = ["sfn", "eval", model, "--benchmark", pair.benchmark.name]
    if pair.benchmark_data:
        words += ["--data", pair.benchmark_data]
    words += ["--format", evaluation["prompt_format"], "--limit", limit or evaluation["limit"],
              "--max-new-tokens", evaluation["max_new_tokens"], "--batch-size", evaluation["batch_size"],
              "--reference-model", pair.base_source, "--out", out]
    return words


def backend_words(backend: str, backend_args: dict[str, Any]) -> list[str]:
    """`sfn eval`'s options for the Merge stage's backend ([] for the default hf)."""
    if backend == "hf":
        return []
    return ["--backend", backend, *(word for key, value in backend_args.items() for word in ("--backend-arg", f"{key}={value}"))]


def merge_commands(pair: DemoPair, evaluation: dict[str, Any], out: Path, label: str, start: str, taken: str | None,
                   *, single_thread: bool, backend: Sequence[str] = ()) -> list[str]:
    """The commands behind one Merge row: write the merged model (if any), then evaluate it (with
    `backend`, the options of `backend_words`)."""
    folder = out / REPRODUCE_DIR / ("merge-" + (taken or start))
    prefix = _threads(single_thread)
    if taken is None:
        model = pair.base_source if start == "base" else pair.tuned_source
        return [prefix + join([*eval_words(model, pair, evaluation, folder / "eval"), *backend])]
    merged = folder / "model"
    return [join(["sfn", "merge", pair.base_source, pair.tuned_source, "--take", taken, "--out", merged, "--overwrite"]),
            prefix + join([*eval_words(merged, pair, evaluation, folder / "eval"), *backend])]


def map_command(pair: DemoPair, probe: str, out: Path, *, single_thread: bool) -> str:
    """`sfn map` with the demo's probe (R's Merge-stage answers), modes, kinds and window."""
    from sfn.demo.map_stage import KINDS, MODES, map_window

    return _threads(single_thread) + join(["sfn", "map", pair.base_source, pair.tuned_source, "--out",
                                           out / REPRODUCE_DIR / "map", "--probe", out / probe, "--modes", ",".join(MODES),
                                           "--kinds", KINDS, "--window", map_window(pair.num_layers)])


def destroy_commands(pair: DemoPair, evaluation: dict[str, Any], kind: str, method: str, layers: str, prompts: int,
                     out: Path, *, single_thread: bool) -> list[str]:
    """One Destruction cell by hand: write the destroyed model (the demo edits it in memory), then
    evaluate it on the stage's prompts, graded I-IV with B as reference (the stage's outputs and levels)."""
    folder = out / REPRODUCE_DIR / f"destroy-{method}-{kind}"
    return [join(["sfn", "destroy", pair.tuned_source, "--select", f"{kind}@{layers}", "--method", method,
                  "--out", folder / "model", "--overwrite"]),
            _threads(single_thread) + join(eval_words(folder / "model", pair, evaluation, folder / "eval", limit=prompts))]


def freeze_command(pair: DemoPair, evaluation: dict[str, Any], training: dict[str, Any], presets: list[str],
                   response_template: str, out: Path, *, single_thread: bool) -> str:
    """`sfn freeze --compare` over the demo's presets with its data, template, schedule and scoring."""
    words: list[Any] = ["sfn", "freeze", pair.base_source, "--compare", ",".join(presets), "--data", pair.train_data,
                        "--out", out / REPRODUCE_DIR / "freeze", "--format", evaluation["prompt_format"],
                        "--instruction", pair.benchmark.instruction,
                        "--response-template", response_template.replace("\n", "\\n"),
                        "--max-steps", training["max_steps"], "--lr", training["lr"], "--batch-size", training["batch_size"],
                        "--warmup-ratio", training["warmup_ratio"], "--seed", training["seed"],
                        "--seq-len", training["seq_len"], "--heldout", training["heldout"],
                        "--save-steps", training["max_steps"] + 1, "--eval", pair.benchmark.name]
    if pair.benchmark_data:
        words += ["--eval-data", pair.benchmark_data]
    words += ["--eval-limit", evaluation["limit"], "--eval-max-new-tokens", evaluation["max_new_tokens"]]
    return _threads(single_thread) + join(words)
