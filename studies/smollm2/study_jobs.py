"""The study's jobs. Each runs in a worker process, reads and writes only the cache folder, and
finishes by writing its `done` file, so a rerun skips it; the long ones (training, evaluation)
also resume from inside (Trainer checkpoints, samples appended to samples.jsonl as they finish).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from study_settings import StudySettings

DONE_FILE = "done.json"


def job_dir(cache: Path, name: str) -> Path:
    return cache / "jobs" / name.replace("+", "_").replace(":", "-").replace("'", "").replace(" ", "_")


def is_done(cache: Path, name: str) -> bool:
    return (job_dir(cache, name) / DONE_FILE).is_file()


def run_job(name: str, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """Run job `name` (e.g. 'train:all', 'eval:B + R's o'); record its time in its done file."""
    import torch

    torch.set_num_threads(settings.threads_per_job)
    torch.manual_seed(settings.seed)
    kind, _, argument = name.partition(":")
    folder = job_dir(cache, name)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = JOBS[kind](argument, folder, cache, settings) or {}
    record = {"job": name, "seconds": round(time.perf_counter() - started, 1), "threads": settings.threads_per_job, **result}
    (folder / DONE_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


def base_dir(cache: Path) -> Path:
    return job_dir(cache, "base") / "model"


def tuned_dir(cache: Path, run: str) -> Path:
    """The model of training run `run` ('all', 'emb+head+o#1': a preset and its seed when not 0)."""
    return job_dir(cache, f"train:{run}") / "run" / "model"


def train_data_file(cache: Path) -> Path:
    return job_dir(cache, "data") / "train.jsonl"


def test_data_file(cache: Path, settings: StudySettings) -> str:
    """The held-out problems: GSM8K test, or the task's held-out set that the data job wrote."""
    return str(job_dir(cache, "data") / "test.jsonl") if settings.task else settings.gsm8k_test


def probe_file(cache: Path, settings: StudySettings) -> Path:
    """The map's task probe (tasks.probe_rows), named after the task: the map's figures carry its name."""
    return job_dir(cache, "data") / f"{settings.task}.jsonl"


def map_dir(cache: Path) -> Path:
    return job_dir(cache, "map") / "map"


def _convert_base(_: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """B as safetensors: the GGUF dequantized once (about 25 s) so every later load takes a second."""
    from sfn.io.load_model import drop_gguf_mark, load_model

    model, tokenizer = load_model(settings.base_source())
    drop_gguf_mark(model)
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    return {"source": str(settings.base_source()), "parameters": sum(p.numel() for p in model.parameters())}


def _train(run: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """`sfn.freeze` from B with the run's preset trainable, with its seed (data order and the loss's
    held-out examples); the `all` run of seed 0 is R, the full fine-tune."""
    from sfn.stethoscopes.freeze import freeze

    preset, _, seed = run.partition("#")
    training = {**settings.training(), "seed": int(seed or settings.seed)}
    result = freeze(str(base_dir(cache)), preset, str(train_data_file(cache)), folder / "run", **training)
    if result.interrupted:
        raise RuntimeError(f"training {run} was interrupted; rerun the study to resume it")
    return {"metrics": result.metrics, "seed": training["seed"]}


def _training_file(_: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """The fixed training subset: the first `train_examples` problems of GSM8K train, in file order; for a
    task, its held-out and training problems (no question in both) and the map's probe (in neither)."""
    if not settings.task:
        lines = Path(settings.gsm8k_train).read_text(encoding="utf-8").splitlines()[: settings.train_examples]
        train_data_file(cache).write_text("\n".join(lines) + "\n", encoding="utf-8")
        return {"examples": len(lines)}
    from tasks import probe_rows, write_jsonl

    held_out, training = settings.task_split()
    write_jsonl(held_out, Path(test_data_file(cache, settings)))
    write_jsonl(training, train_data_file(cache))
    write_jsonl(probe_rows(settings.task, settings.map_probe_problems, settings.shots, held_out + training),
                probe_file(cache, settings))
    return {"examples": len(training), "held_out": len(held_out), "probe": settings.map_probe_problems}


def _evaluate(variant: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """One row of the Merge or Freeze table: greedy generation on the fixed GSM8K subset, levels graded."""
    import contextlib
    import copy

    from sfn.eval import evaluate
    from sfn.eval.grade import Grader
    from sfn.io.load_model import load_model
    from sfn.stethoscopes.surgery import merged

    start, taken, alpha = settings.variants()[variant]
    if variant.startswith("map #"):  # the map's best transplant cells, known once it is made
        taken = map_cells(cache, settings)[int(variant.removeprefix("map #")) - 1]
    base, tokenizer = load_model(base_dir(cache))
    model = base if start == "B" else load_model(tuned_dir(cache, start), with_tokenizer=False)[0]
    # Fluency is the undamaged B's likelihood for every row, so rows are graded on one scale; B needs
    # its own copy only when the merge edits it in place.
    reference = copy.deepcopy(base) if model is base and taken else base
    grader = Grader(reference=(reference, tokenizer))
    edit = merged(model, str(tuned_dir(cache, "all")), taken, alpha=alpha) if taken else contextlib.nullcontext()
    with edit:
        result = evaluate((model, tokenizer), grader=grader, out=str(folder / "run"),
                          **settings.evaluation(test_data_file(cache, settings)))
    if result.summary.get("interrupted"):
        raise RuntimeError(f"evaluation of {variant} was interrupted; rerun the study to resume it")
    return {"summary": result.summary, "taken": taken, "alpha": alpha}


def map_cells(cache: Path, settings: StudySettings, mode: str = "transplant", best: bool = True) -> list[str]:
    """Selectors of the map's `map_top` best layer-window cells of `mode`, by the task probe's score:
    for transplants the share of KL(R || B) they close, for destructions KL(B || variant) on the
    conversation probe (`best`: the most damaging; else the least)."""
    import pandas as pd

    table = pd.read_csv(map_dir(cache) / "map.csv", keep_default_na=False, na_values=[""])
    probe, score = (settings.task, "recovered_share") if mode == "transplant" else ("conversation", "kl_to_base")
    cells = table[(table["mode"] == mode) & (table["layers"] != "all") & (table["probe"] == probe)]
    ranked = cells.sort_values(score, ascending=not best, kind="stable").head(settings.map_top)
    return [f"{row.kind}@{row.layers}" for row in ranked.itertuples()]


def _destroy(_: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """The Destruction map on B: every linear kind x (zero, reinit) x layer range, plus removing each
    range, answering the conversation prompts; levels graded with the undamaged B as fluency reference."""
    import copy

    from sfn.eval.grade import Grader
    from sfn.io.load_model import load_model
    from sfn.experiments import sweep

    import pandas as pd

    model, tokenizer = load_model(base_dir(cache))
    grader = Grader(reference=(copy.deepcopy(model), tokenizer))
    common = dict(tokenizer=tokenizer, max_new_tokens=settings.destruction_max_new_tokens, seed=settings.seed, grader=grader)
    prompts = list(settings.conversation_prompts)
    table = sweep(model, prompts, methods=settings.destruction_methods, layers=list(settings.destruction_layers), **common)
    if settings.map_window:
        # The map's most and least damaging destruction cells, checked by generation: one sweep each,
        # without its repeated undamaged rows.
        chosen = map_cells(cache, settings, "zero", best=True) + map_cells(cache, settings, "zero", best=False)
        for selector in dict.fromkeys(chosen):
            kind, _, layers = selector.partition("@")
            cell = sweep(model, prompts, kinds=[kind], methods=("zero",), layers=[layers], **common)
            table = pd.concat([table, cell[cell["method"] != "none"]], ignore_index=True)
        table = table.drop_duplicates(subset=["method", "kind", "layers", "prompt"], ignore_index=True)
    table["question"] = [settings.conversation_prompts[index] for index in table["prompt"]]
    table.to_csv(folder / "destruction.csv", index=False)
    return {"rows": len(table)}


def _delta(_: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """`sfn delta` between B and R (the `all` fine-tune): the paper's Figures 2 and 3."""
    from sfn.stethoscopes.delta import delta, write_outputs

    # The report card (spectra, the paper's clamped histograms) for the task study; the first study's
    # results were made without them.
    card = bool(settings.task)
    result = delta(str(base_dir(cache)), str(tuned_dir(cache, "all")), spectral=card)
    paths = write_outputs(result, folder / "delta", every=settings.histogram_every, paper_clamp=card)
    return {"outputs": {name: str(path) for name, path in paths.items()}}


def _map(_: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """The transplant and destruction maps of B and R: every kind x window, on the task probe (R's
    worked solutions) and the conversation probe (B's own answers), with an alpha curve of `alpha_kind`."""
    from sfn.experiments.map_outputs import write_map
    from sfn.experiments.maps import map as make_map

    result = make_map(str(base_dir(cache)), str(tuned_dir(cache, "all")), modes=("transplant", "zero"),
                      kinds=settings.map_kinds, window=settings.map_window,
                      probes=(str(probe_file(cache, settings)), "conversation"), alpha_curve=settings.alpha_kind,
                      cache_dir=folder / "probes", seed=settings.seed, progress=True)
    paths = write_map(result, map_dir(cache))
    return {"cells": int(len(result.table)), "outputs": {name: str(path) for name, path in paths.items()}}


JOBS = {
    "base": _convert_base,
    "data": _training_file,
    "train": _train,
    "eval": _evaluate,
    "destroy": _destroy,
    "delta": _delta,
    "map": _map,
}
