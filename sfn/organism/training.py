"""Training the organism with `transformers.Trainer`: packed pretraining blocks, prompt-masked
fine-tuning examples, and the loss of every step recorded at full precision."""

from __future__ import annotations

import tempfile
from typing import Any

import torch
from transformers import Trainer, TrainingArguments

from sfn.stethoscopes.freeze.data import IGNORE_INDEX, PaddingCollator



def pretraining_blocks(tokenizer, documents: list[str], block_size: int) -> list[dict[str, torch.Tensor]]:
    """Documents as <bos> text <eos>, concatenated and cut into equal blocks (the tail is dropped)."""
    stream: list[int] = []
    for ids in tokenizer(documents)["input_ids"]:
        stream += ids + [tokenizer.eos_token_id]
    count = len(stream) // block_size
    blocks = torch.tensor(stream[: count * block_size]).view(count, block_size)
    return [{"input_ids": block, "labels": block} for block in blocks]


def finetuning_examples(tokenizer, pairs: list[tuple[str, str]]) -> list[dict[str, list[int]]]:
    """<bos> prompt, then ' ' solution <eos>; only the solution (and its end) is learned."""
    prompts = tokenizer([prompt for prompt, _ in pairs])["input_ids"]
    answers = tokenizer([" " + answer for _, answer in pairs], add_special_tokens=False)["input_ids"]
    examples = []
    for prompt, answer in zip(prompts, answers):
        completion = answer + [tokenizer.eos_token_id]
        examples.append({"input_ids": prompt + completion, "labels": [IGNORE_INDEX] * len(prompt) + completion})
    return examples


class _LossRecordingTrainer(Trainer):
    """Keeps each step's loss as a full-precision float (Trainer's own log rounds it)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.step_losses: list[float] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        loss = result[0] if return_outputs else result
        self.step_losses.append(float(loss.detach()))
        return result


def train(model, dataset: list[dict[str, Any]], tokenizer, stage, seed: int, *, max_steps: int | None = None,
          progress: bool = True, name: str = "train") -> list[float]:
    """Train `model` in place on `dataset` with the stage's settings; the loss of every step."""
    with tempfile.TemporaryDirectory(prefix="sfn-organism-") as scratch:
        arguments = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=stage.batch_size,
            learning_rate=stage.learning_rate,
            weight_decay=stage.weight_decay,
            warmup_steps=stage.warmup_steps,
            lr_scheduler_type="cosine",
            num_train_epochs=stage.epochs,
            max_steps=max_steps or -1,
            seed=seed,
            data_seed=seed,
            use_cpu=True,
            save_strategy="no",
            report_to="none",
            logging_strategy="no",
            disable_tqdm=not progress,
            remove_unused_columns=False,
            dataloader_pin_memory=False,
            run_name=name,
        )
        trainer = _LossRecordingTrainer(
            model=model, args=arguments, train_dataset=dataset, data_collator=PaddingCollator(tokenizer.pad_token_id)
        )
        trainer.train()
    # Trainer switches the KV cache off for training; generation without it recomputes every
    # position at every step (tens of times slower).
    model.config.use_cache = True
    model.generation_config.use_cache = True
    model.eval()
    return trainer.step_losses
