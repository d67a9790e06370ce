"""`build_organism(seed, out)`: pretrain B on the generated world, fine-tune R on worked multi-step
solutions, measure both on organism-math, and write everything with its provenance.

Training runs on one CPU thread: float sums then happen in one fixed order, so the same seed gives
the same losses bit for bit whatever the machine's core count (and on a busy 2-core machine one
thread is also faster than two fighting over the cores).
"""

from __future__ import annotations

import contextlib
import json
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import sfn
from sfn.errors import SfnError, argument
from sfn.organism.benchmark import BENCHMARK_FILE, organism_math
from sfn.organism.corpus import Corpus, CorpusSizes, benchmark_rows, build_corpus
from sfn.organism.tokenizer import build_tokenizer
from sfn.organism.training import finetuning_examples, pretraining_blocks, train

BUILD_THREADS = 1
PROVENANCE_FILE = "provenance.json"
RECORDED_STEPS = 6  # first losses of each stage kept in the provenance, checked by the tests


@dataclass(frozen=True)
class ModelShape:
    hidden_size: int = 128
    intermediate_size: int = 320
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    max_position_embeddings: int = 256


@dataclass(frozen=True)
class StageSettings:
    """One training stage (Trainer settings); warmup is a fixed number of steps, so the first
    steps' learning rates do not depend on how long the stage runs."""

    learning_rate: float
    batch_size: int
    epochs: float
    warmup_steps: int = 20
    weight_decay: float = 0.01


@dataclass(frozen=True)
class BuildConfig:
    shape: ModelShape = ModelShape()
    sizes: CorpusSizes = field(default_factory=CorpusSizes)
    block_size: int = 128
    pretraining: StageSettings = StageSettings(learning_rate=2e-3, batch_size=16, epochs=1.0)
    finetuning: StageSettings = StageSettings(learning_rate=1e-3, batch_size=16, epochs=3.0)
    eval_max_new_tokens: int = 96


@dataclass
class BuildResult:
    out: Path
    provenance: dict[str, Any]
    losses: dict[str, list[float]] = field(default_factory=dict)


@contextlib.contextmanager
def build_threads() -> Iterator[None]:
    """Run the enclosed training on BUILD_THREADS threads (see the module docstring), then restore."""
    threads = torch.get_num_threads()
    torch.set_num_threads(BUILD_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def model_config(shape: ModelShape, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_attention_heads,
        max_position_embeddings=shape.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def organism_tokenizer(corpus: Corpus) -> PreTrainedTokenizerFast:
    texts = [*corpus.pretraining, *(prompt + " " + answer for prompt, answer in corpus.finetuning)]
    texts += [problem.question for problem in corpus.benchmark]
    return build_tokenizer(texts)


def pretrain(corpus: Corpus, tokenizer, config: BuildConfig, seed: int, *, max_steps: int | None = None,
             progress: bool = True) -> tuple[LlamaForCausalLM, list[float]]:
    """B: a fresh model (initialised from `seed`) trained on the pretraining corpus."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(model_config(config.shape, tokenizer))
    blocks = pretraining_blocks(tokenizer, corpus.pretraining, config.block_size)
    losses = train(model, blocks, tokenizer, config.pretraining, seed, max_steps=max_steps, progress=progress, name="pretrain B")
    return model, losses


def finetune(base: LlamaForCausalLM, pairs: list[tuple[str, str]], tokenizer, config: BuildConfig, seed: int, *,
             max_steps: int | None = None, progress: bool = True) -> tuple[LlamaForCausalLM, list[float]]:
    """R: a copy of `base` trained on (prompt, worked solution) pairs, loss on the solutions only."""
    model = LlamaForCausalLM(base.config)
    model.load_state_dict(base.state_dict())
    examples = finetuning_examples(tokenizer, pairs)
    losses = train(model, examples, tokenizer, config.finetuning, seed, max_steps=max_steps, progress=progress, name="fine-tune R")
    return model, losses


def heldout_accuracy(model, tokenizer, data: Path, config: BuildConfig, progress: bool = True) -> dict[str, Any]:
    """Greedy accuracy on organism-math (exact number after 'The final answer is')."""
    from sfn.eval import evaluate

    result = evaluate(
        (model.eval(), tokenizer), benchmark=organism_math(data), prompt_format="plain", grade_levels=False,
        max_new_tokens=config.eval_max_new_tokens, batch_size=50, progress=progress,
    )
    return {"accuracy": result.summary["accuracy"], "samples": result.summary["samples"],
            "mean_output_tokens": result.summary["mean_output_tokens"]}


def _save(model: LlamaForCausalLM, tokenizer, directory: Path) -> None:
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def build_organism(seed: int, out: str | Path, *, quick: bool = False, config: BuildConfig = BuildConfig(),
                   progress: bool = True) -> BuildResult:
    """Train B and R from `seed` and write out/{base,tuned}, out/organism-math.jsonl, out/provenance.json.

    `quick` runs only the first RECORDED_STEPS steps of each stage on the full data (same order,
    same learning rates), for checking reproducibility; it skips the evaluation.
    """
    if seed < 0:
        raise SfnError(f"{argument('seed')} must be a non-negative integer, got {seed}")
    out = Path(out)
    started = time.perf_counter()
    with build_threads():
        corpus = build_corpus(seed, config.sizes)
        tokenizer = organism_tokenizer(corpus)
        steps = RECORDED_STEPS if quick else None
        base, pretraining_losses = pretrain(corpus, tokenizer, config, seed, max_steps=steps, progress=progress)
        tuned, finetuning_losses = finetune(base, corpus.finetuning, tokenizer, config, seed, max_steps=steps, progress=progress)
        out.mkdir(parents=True, exist_ok=True)
        _save(base, tokenizer, out / "base")
        _save(tuned, tokenizer, out / "tuned")
        data = out / BENCHMARK_FILE
        data.write_text("".join(json.dumps(row) + "\n" for row in benchmark_rows(corpus.benchmark)))
        accuracy = {} if quick else {
            "base": heldout_accuracy(base, tokenizer, data, config, progress),
            "tuned": heldout_accuracy(tuned, tokenizer, data, config, progress),
        }
    losses = {"pretraining": pretraining_losses, "finetuning": finetuning_losses}
    provenance = {
        "seed": seed,
        "quick": quick,
        "sfn_version": sfn.__version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": BUILD_THREADS,
        "machine": platform.machine(),
        "build_config": asdict(config),
        "model_config": base.config.to_diff_dict(),
        "parameters": sum(p.numel() for p in base.parameters()),
        "vocabulary_size": len(tokenizer),
        "training_steps": {name: len(values) for name, values in losses.items()},
        "first_losses": {name: values[:RECORDED_STEPS] for name, values in losses.items()},
        "final_losses": {name: values[-1] for name, values in losses.items()},
        "heldout_accuracy": accuracy,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    (out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    return BuildResult(out, provenance, losses)
