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


def tuned_dir(cache: Path, preset: str) -> Path:
    return job_dir(cache, f"train:{preset}") / "run" / "model"


def train_data_file(cache: Path) -> Path:
    return job_dir(cache, "data") / "train.jsonl"


def _convert_base(_: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """B as safetensors: the GGUF dequantized once (about 25 s) so every later load takes a second."""
    from sfn.io.load_model import drop_gguf_mark, load_model

    model, tokenizer = load_model(settings.base_source())
    drop_gguf_mark(model)
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    return {"source": str(settings.base_source()), "parameters": sum(p.numel() for p in model.parameters())}


def _train(preset: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """`sfn.freeze` from B with `preset` trainable; the `all` run is R, the full fine-tune."""
    from sfn.stethoscopes.freeze import freeze

    result = freeze(str(base_dir(cache)), preset, str(train_data_file(cache)), folder / "run", **settings.training())
    if result.interrupted:
        raise RuntimeError(f"training {preset} was interrupted; rerun the study to resume it")
    return {"metrics": result.metrics}


def _training_file(_: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """The fixed training subset: the first `train_examples` problems of GSM8K train, in file order."""
    lines = Path(settings.gsm8k_train).read_text(encoding="utf-8").splitlines()[: settings.train_examples]
    train_data_file(cache).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"examples": len(lines)}


def _evaluate(variant: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """One row of the Merge or Freeze table: greedy generation on the fixed GSM8K subset, levels graded."""
    import contextlib
    import copy

    from sfn.eval import evaluate
    from sfn.eval.grade import Grader
    from sfn.io.load_model import load_model
    from sfn.stethoscopes.surgery import merged

    start, taken = settings.variant(variant)
    base, tokenizer = load_model(base_dir(cache))
    model = base if start == "B" else load_model(tuned_dir(cache, start), with_tokenizer=False)[0]
    # Fluency is the undamaged B's likelihood for every row, so rows are graded on one scale; B needs
    # its own copy only when the merge edits it in place.
    reference = copy.deepcopy(base) if model is base and taken else base
    grader = Grader(reference=(reference, tokenizer))
    edit = merged(model, str(tuned_dir(cache, "all")), taken) if taken else contextlib.nullcontext()
    with edit:
        result = evaluate((model, tokenizer), grader=grader, out=str(folder / "run"), **settings.evaluation())
    if result.summary.get("interrupted"):
        raise RuntimeError(f"evaluation of {variant} was interrupted; rerun the study to resume it")
    return {"summary": result.summary}


def _destroy(_: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """The Destruction map on B: every linear kind x (zero, reinit) x layer range, plus removing each
    range, answering the conversation prompts; levels graded with the undamaged B as fluency reference."""
    import copy

    from sfn.eval.grade import Grader
    from sfn.io.load_model import load_model
    from sfn.experiments import sweep

    model, tokenizer = load_model(base_dir(cache))
    grader = Grader(reference=(copy.deepcopy(model), tokenizer))
    table = sweep(model, list(settings.conversation_prompts), tokenizer=tokenizer, methods=settings.destruction_methods,
                  layers=list(settings.destruction_layers), max_new_tokens=settings.destruction_max_new_tokens,
                  seed=settings.seed, grader=grader)
    table["question"] = [settings.conversation_prompts[index] for index in table["prompt"]]
    table.to_csv(folder / "destruction.csv", index=False)
    return {"rows": len(table)}


def _delta(_: str, folder: Path, cache: Path, settings: StudySettings) -> dict[str, Any]:
    """`sfn delta` between B and R (the `all` fine-tune): the paper's Figures 2 and 3."""
    from sfn.stethoscopes.delta import delta, write_outputs

    result = delta(str(base_dir(cache)), str(tuned_dir(cache, "all")))
    paths = write_outputs(result, folder / "delta", every=settings.histogram_every)
    return {"outputs": {name: str(path) for name, path in paths.items()}}


JOBS = {
    "base": _convert_base,
    "data": _training_file,
    "train": _train,
    "eval": _evaluate,
    "destroy": _destroy,
    "delta": _delta,
}
