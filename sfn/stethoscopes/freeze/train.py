"""`freeze(...)`: supervised fine-tuning with only the selected modules trainable (the Freeze stethoscope).

Built on `transformers.Trainer` (with accelerate underneath), so the same call runs on one CPU, one
GPU, or many processes under `accelerate launch --config_file configs/accelerate/...` (DDP, DeepSpeed
ZeRO-3, FSDP). Frozen tensors get `requires_grad=False`, which keeps them out of the optimizer
(Trainer builds its parameter groups from trainable tensors only) and out of the gradient.

OUT holds `checkpoints/` (resumed from automatically), `model/` (a loadable Hugging Face model),
`metrics.json`, `loss.csv`, `loss.png`, optionally `plugin.safetensors` and `eval.json`.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sfn.errors import SfnError, argument
from sfn.eval.prompts import resolve_format
from sfn.stethoscopes.freeze.callbacks import (
    FrozenCheck,
    FrozenCheckCallback,
    InterruptCallback,
    LossBar,
    MemoryCallback,
    SpeedCallback,
)
from sfn.io.guard import guard_output
from sfn.io.safetensors_reader import read_safetensors_header
from sfn.io.full_disk import one_line_when_full
from sfn.stethoscopes.freeze.config import FreezeConfig, check_resumable, is_main_process, same_run
from sfn.stethoscopes.freeze.data import Formatting, PaddingCollator, prepare_data, read_records
from sfn.stethoscopes.freeze.export import write_plugin, write_plugin_from_files
from sfn.stethoscopes.freeze.presets import TrainableParameters, trainable_parameters
from sfn.io.load_model import drop_gguf_mark
from sfn.stethoscopes.freeze.report import LOSS_FILE, METRICS_FILE, loss_frame, write_overlay, write_run_report

log = logging.getLogger("sfn")
CHECKPOINTS = "checkpoints"
MODEL_DIR = "model"
PLUGIN_FILE = "plugin.safetensors"


@dataclass
class FreezeResult:
    """What a Freeze run did and measured (also written to OUT/metrics.json)."""

    out_dir: Path
    model_dir: Path | None  # None when interrupted: the last checkpoint is then the usable model
    plugin_path: Path | None
    trainable: TrainableParameters
    loss: pd.DataFrame
    frozen_check: FrozenCheck
    metrics: dict[str, Any]

    @property
    def interrupted(self) -> bool:
        return bool(self.metrics["interrupted"])


def _source_label(model: Any) -> str:
    """How the run's settings name the model: the path or hub id given, else the loaded model's name."""
    if isinstance(model, (str, os.PathLike)):
        return str(model)
    if isinstance(model, tuple):
        model = model[0]
    return str(getattr(model, "name_or_path", "") or type(model).__name__)


def _load(model: Any, tokenizer: Any, allow_pickle: bool = False) -> tuple[Any, Any, str]:
    """(model, tokenizer, source label) from a path/hub id, a (model, tokenizer) pair, or a model."""
    source = _source_label(model)
    if isinstance(model, (str, os.PathLike)):
        from sfn.io.load_model import load_model

        loaded, loaded_tokenizer = load_model(model, allow_pickle=allow_pickle)
        return loaded, tokenizer or loaded_tokenizer, source
    if isinstance(model, tuple):
        model, tokenizer = model
    if tokenizer is None:
        raise SfnError("training needs the model's tokenizer: pass (model, tokenizer) or tokenizer=...")
    return model, tokenizer, source


def _training_arguments(config: FreezeConfig, checkpoints: Path):
    from transformers import TrainingArguments

    on_gpu = torch.cuda.is_available()
    # transformers 5.23 renamed gradient_checkpointing to activation_checkpointing; older ones know only the first.
    parameters = inspect.signature(TrainingArguments).parameters
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in parameters else "gradient_checkpointing"
    return TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        adam_beta2=config.adam_beta2,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of all steps
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        use_cpu=not on_gpu,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        dataloader_pin_memory=on_gpu,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        **{checkpointing: config.gradient_checkpointing},
        disable_tqdm=not config.progress,
        ddp_find_unused_parameters=False,
    )


def _checkpoint_step(path: Path) -> int:
    return int(path.name.removeprefix("checkpoint-"))


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why a Trainer checkpoint cannot be resumed from (a file cut short by a kill or a full disk), or None."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return "its trainer_state.json is missing or not whole"
    for path in sorted(checkpoint.iterdir()):
        if path.suffix == ".safetensors":
            try:
                read_safetensors_header(path)
            except SfnError as error:
                return str(error)
        elif path.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(path):
            return f"{path.name} is cut short or damaged"
    return None


def last_checkpoint(checkpoints: Path) -> tuple[str | None, list[str]]:
    """The newest whole checkpoint, and a note for every newer one skipped because it is damaged."""
    found = [p for p in checkpoints.glob("checkpoint-*") if p.is_dir() and p.name.removeprefix("checkpoint-").isdigit()]
    notes = []
    for candidate in sorted(found, key=_checkpoint_step, reverse=True):
        problem = checkpoint_problem(candidate)
        if problem is None:
            return str(candidate), notes
        notes.append(f"checkpoint {candidate.name} is damaged ({problem}); resumed from the one before it instead")
        log.warning("%s", notes[-1])
    if found:
        raise SfnError(
            f"every checkpoint in {checkpoints} is damaged ({'; '.join(notes)}); delete {checkpoints} to train from the start"
        )
    return None, notes


def finished_run(out_dir: Path, config: FreezeConfig, source: str) -> dict[str, Any] | None:
    """The metrics of a run in `out_dir` that finished with these settings, or None."""
    if not same_run(out_dir, config, source) or not (out_dir / MODEL_DIR).is_dir():
        return None
    try:
        metrics = json.loads((out_dir / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and metrics.get("interrupted") is False else None


def _finished_result(out_dir: Path, config: FreezeConfig, metrics: dict[str, Any]) -> FreezeResult:
    """A finished run, read back without training or writing anything (the model only on the meta device)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    model_dir = out_dir / MODEL_DIR
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    trainable = trainable_parameters(skeleton, config.train, norms=config.norms, apply=False)
    loss_path = out_dir / LOSS_FILE
    loss = pd.read_csv(loss_path) if loss_path.is_file() else loss_frame([])
    check = FrozenCheck(
        metrics.get("trainable_with_optimizer_state", 0), metrics.get("frozen_with_grad", []),
        metrics.get("frozen_with_optimizer_state", []), checked=True,
    )
    note = f"{out_dir} already holds this run, finished after {metrics.get('steps')} steps; left as it is"
    log.warning("%s", note)
    plugin = out_dir / PLUGIN_FILE
    metrics = {**metrics, "already_finished": True, "notes": [*metrics.get("notes", []), note]}
    return FreezeResult(out_dir, model_dir, plugin if plugin.is_file() else None, trainable, loss, check, metrics)


def freeze(
    model: Any,
    train: str | None = None,
    data: str | None = None,
    out: str | os.PathLike | None = None,
    *,
    config: FreezeConfig | None = None,
    tokenizer: Any = None,
    callbacks: list[Any] | None = None,
    **settings: Any,
) -> FreezeResult:
    """Fine-tune `model` with only `train` (a preset or selector; norms added unless norms=False) trainable.

    `model` is a model directory, `.gguf` file or hub id, a loaded `(model, tokenizer)`, or a model with
    `tokenizer=`; an in-memory model is trained in place. Settings come from `config` and keyword
    arguments (see `FreezeConfig`). A run whose OUT already has checkpoints resumes from the last one.
    `callbacks` are extra `transformers.TrainerCallback`s.
    """
    named = {key: value for key, value in (("train", train), ("data", data), ("out", out)) if value is not None}
    config = (config or FreezeConfig()).with_overrides({**named, **settings})
    if config.out is not None:
        config = config.with_overrides({"out": str(config.out)})
    config.validate()
    read = [model if isinstance(model, (str, os.PathLike)) else None, config.data, config.eval_data]
    out_dir = guard_output(config.out, inputs=[source for source in read if source], replace=False)
    finished = finished_run(out_dir, config, _source_label(model)) if config.resume else None
    if finished is not None:
        return _finished_result(out_dir, config, finished)
    records = read_records(config.data, config.columns, config.limit)
    checkpoints = out_dir / CHECKPOINTS
    # Made before loading: under DeepSpeed ZeRO-3 the arguments make from_pretrained load each
    # process's shard only, instead of the whole model once per process.
    arguments = _training_arguments(config, checkpoints)
    model_source = model
    model, tokenizer, source = _load(model, tokenizer, config.allow_pickle)
    drop_gguf_mark(model)
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
        raise SfnError("the tokenizer has neither a pad nor an end-of-sequence token to pad batches with")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainable = trainable_parameters(model, config.train, norms=config.norms)
    # "auto" (the default) is the chat template when the tokenizer has one, else raw, as in sfn eval.
    prompt_format = resolve_format(config.prompt_format, tokenizer)
    if config.prompt_format == "auto" and config.progress:
        print(f"--format auto: the tokenizer {'has' if prompt_format == 'chat' else 'has no'} chat template, "
              f"so prompts use the {prompt_format} format")
    formatting = Formatting(prompt_format, config.instruction, config.response_template)
    prepared = prepare_data(records, tokenizer, formatting, config.seq_len, config.heldout, config.seed)

    last, checkpoint_notes = last_checkpoint(checkpoints) if checkpoints.is_dir() else (None, [])
    if last and not config.resume:
        raise SfnError(f"{out_dir} already holds checkpoints (last: {Path(last).name}); resume it, or pass another {argument('out')}")
    is_main = is_main_process()
    if is_main:
        check_resumable(out_dir, config, source)
    plugin_from_files = isinstance(model_source, (str, os.PathLike))
    snapshot = config.plugin and not plugin_from_files
    initial = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad} if snapshot else {}

    from transformers import PrinterCallback, ProgressCallback, Trainer

    speed, memory, frozen, interrupt = SpeedCallback(), MemoryCallback(), FrozenCheckCallback(), InterruptCallback()
    model.train()
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=prepared.train,
        eval_dataset=prepared.heldout,
        data_collator=PaddingCollator(pad_id),
        processing_class=tokenizer,
        callbacks=[speed, memory, frozen, interrupt, *(callbacks or [])],
    )
    if config.progress:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(LossBar(f"freeze {config.train}"))
    else:  # without a progress bar, Trainer would print every log line instead
        trainer.remove_callback(PrinterCallback)
    heldout_before = trainer.evaluate()["eval_loss"] if prepared.heldout and not last else None
    with one_line_when_full(out_dir, "the whole checkpoints written before are kept; rerun to resume once there is room"):
        trainer.train(resume_from_checkpoint=last)
    # Trainer switches the KV cache off for training; generation afterwards (the held-out score,
    # a caller's evaluation) would run tens of times slower without it.
    model.config.use_cache = True
    if model.generation_config is not None:
        model.generation_config.use_cache = True
    interrupted = interrupt.interrupted
    heldout_after = trainer.evaluate()["eval_loss"] if prepared.heldout and not interrupted else None

    model_dir = plugin_path = None
    if not interrupted:
        model_dir = out_dir / MODEL_DIR
        with one_line_when_full(model_dir, "it was removed; the checkpoints are kept",
                                undo=lambda: shutil.rmtree(model_dir, ignore_errors=True)):
            trainer.save_model(str(model_dir))
    trainer.accelerator.wait_for_everyone()
    loss = loss_frame(trainer.state.log_history)
    throughput, peak = speed.throughput, memory.memory
    metrics: dict[str, Any] = {
        "model": source,
        "train": config.train,
        "selector": trainable.selector,
        "norms": config.norms,
        "trainable_parameters": trainable.trainable,
        "total_parameters": trainable.total,
        "trainable_share": trainable.share,
        "trainable_tensors": len(trainable.names),
        "tied_embeddings": trainable.tied_embeddings,
        "notes": trainable.notes + checkpoint_notes,
        "examples": prepared.records,
        "train_examples": len(prepared.train),
        "heldout_examples": len(prepared.heldout) if prepared.heldout else 0,
        "dropped_examples": prepared.dropped,
        "processes": trainer.args.world_size,
        "effective_batch": config.batch_size * config.grad_accum * trainer.args.world_size,
        "seq_len": config.seq_len,
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "steps_per_second": throughput.steps_per_second,
        "tokens_per_second": throughput.tokens_per_second,
        "timed_steps": throughput.timed_steps,
        "memory_kind": peak.kind,
        "peak_memory_bytes": peak.peak_bytes,
        "memory_at_start_bytes": peak.start_bytes,
        "final_train_loss": float(loss["loss"].iloc[-1]) if len(loss) else None,
        "heldout_loss_before": heldout_before,
        "heldout_loss": heldout_after,
        "heldout_score": None,
        "frozen_with_grad": frozen.result.frozen_with_grad,
        "frozen_with_optimizer_state": frozen.result.frozen_with_state,
        "trainable_with_optimizer_state": frozen.result.trainable_with_state,
        "resumed_from": Path(last).name if last else None,
        "interrupted": interrupted,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    if trainer.is_world_process_zero():
        if config.plugin and not interrupted:
            plugin_file = out_dir / PLUGIN_FILE
            plugin_path = (
                write_plugin_from_files(model_source, model_dir, trainable, plugin_file, allow_pickle=config.allow_pickle)
                if plugin_from_files
                else write_plugin(model, initial, trainable, source, plugin_file)
            )
        if config.eval_benchmark and not interrupted:
            metrics["heldout_score"] = _evaluate(model, tokenizer, config, out_dir)
        write_run_report(out_dir, loss, metrics)
        if config.report_overlay:
            write_overlay(out_dir.parent)
    if frozen.result.frozen_with_grad or frozen.result.frozen_with_state:
        log.warning("frozen tensors took part in the update: %s", frozen.result)
    return FreezeResult(out_dir, model_dir, plugin_path, trainable, loss, frozen.result, metrics)


def _evaluate(model: Any, tokenizer: Any, config: FreezeConfig, out_dir: Path) -> dict[str, Any]:
    """Held-out score of the trained model from `sfn.evaluate` (greedy, no level grading)."""
    from sfn.eval import evaluate

    model.eval()
    result = evaluate(
        (model, tokenizer),
        benchmark=config.eval_benchmark,
        data=config.eval_data,
        limit=config.eval_limit,
        max_new_tokens=config.eval_max_new_tokens,
        prompt_format=resolve_format(config.prompt_format, tokenizer),
        instruction=config.instruction,
        grade_levels=False,
        progress=config.progress,
    )
    result.samples.to_json(out_dir / "eval_samples.jsonl", orient="records", lines=True, force_ascii=False)
    (out_dir / "eval.json").write_text(json.dumps(result.summary, indent=2, default=str))
    return {key: result.summary.get(key) for key in ("benchmark", "samples", "accuracy", "accuracy_ci95")}
