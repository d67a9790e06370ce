"""Trainer callbacks of a Freeze run: speed and memory, the frozen-parameter check, and Ctrl-C.

Speed counts only the time inside optimizer steps (on_step_begin to on_step_end), and leaves out the
first step, which pays one-off costs (allocator warm-up, lazy initialisation); checkpoint saving and
evaluation are not steps. Peak memory is `torch.cuda.max_memory_allocated` on a GPU and, on CPU, the
largest resident set size (RSS) a sampling thread saw while training ran, next to the RSS at the start.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import TrainerCallback

RSS_SAMPLE_SECONDS = 0.005


@dataclass
class Throughput:
    timed_steps: int = 0
    timed_seconds: float = 0.0
    steps: int = 0
    tokens: int = 0  # non-padding input tokens of all processes over all steps of this session

    @property
    def steps_per_second(self) -> float | None:
        return self.timed_steps / self.timed_seconds if self.timed_seconds > 0 else None

    @property
    def tokens_per_second(self) -> float | None:
        """Mean tokens per step times steps per second (a step's tokens vary with padding and length)."""
        rate = self.steps_per_second
        return self.tokens / self.steps * rate if rate and self.steps and self.tokens else None


class SpeedCallback(TrainerCallback):
    """Seconds of every optimizer step after the first, and the input tokens the session saw."""

    def __init__(self) -> None:
        self.throughput = Throughput()
        self._started = 0.0
        self._tokens_at_start = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._tokens_at_start = state.num_input_tokens_seen

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        seconds = time.perf_counter() - self._started
        self.throughput.steps += 1
        if self.throughput.steps > 1:
            self.throughput.timed_steps += 1
            self.throughput.timed_seconds += seconds

    def on_train_end(self, args, state, control, **kwargs):
        self.throughput.tokens = state.num_input_tokens_seen - self._tokens_at_start


def current_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


@dataclass
class MemoryPeak:
    kind: str  # "cuda" (max allocated) or "rss"
    peak_bytes: int = 0
    start_bytes: int = 0


class MemoryCallback(TrainerCallback):
    """Peak memory between train begin and train end (see the module docstring for what is measured)."""

    def __init__(self) -> None:
        self.memory = MemoryPeak("cuda" if torch.cuda.is_available() else "rss")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            self.memory.peak_bytes = max(self.memory.peak_bytes, current_rss())

    def on_train_begin(self, args, state, control, **kwargs):
        if self.memory.kind == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self.memory.start_bytes = torch.cuda.memory_allocated()
            return
        self.memory.start_bytes = self.memory.peak_bytes = current_rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="sfn-rss-sampler", daemon=True)
        self._thread.start()

    def on_step_end(self, args, state, control, **kwargs):
        if self.memory.kind == "rss":
            self.memory.peak_bytes = max(self.memory.peak_bytes, current_rss())

    def on_train_end(self, args, state, control, **kwargs):
        if self.memory.kind == "cuda":
            self.memory.peak_bytes = torch.cuda.max_memory_allocated()
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None


@dataclass
class FrozenCheck:
    """What the first optimizer step showed: frozen tensors must have no gradient and no optimizer state."""

    trainable_with_state: int = 0
    frozen_with_grad: list[str] = field(default_factory=list)
    frozen_with_state: list[str] = field(default_factory=list)
    checked: bool = False

    @property
    def ok(self) -> bool:
        return self.checked and not self.frozen_with_grad and not self.frozen_with_state


class FrozenCheckCallback(TrainerCallback):
    """After the first optimizer step (gradients still present in on_pre_optimizer_step), look at every
    parameter: a frozen one must have no .grad and no entry in the optimizer's state."""

    def __init__(self) -> None:
        self.result = FrozenCheck()

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.result.checked or model is None:
            return
        self.result.frozen_with_grad = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]

    def on_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self.result.checked or model is None or optimizer is None:
            return
        stateful = {id(p) for p in getattr(optimizer, "state", {})}
        named = list(model.named_parameters())
        self.result.frozen_with_state = [n for n, p in named if not p.requires_grad and id(p) in stateful]
        self.result.trainable_with_state = sum(1 for _, p in named if p.requires_grad and id(p) in stateful)
        self.result.checked = True


class InterruptCallback(TrainerCallback):
    """First Ctrl-C: finish the current step, save a checkpoint, stop. A second Ctrl-C stops at once.

    In a multi-process run every process must decide to stop at the same step (saving is collective),
    so the flag is combined across processes after each step.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._requested = False
        self._previous: Any = None

    def _handle(self, signum, frame) -> None:
        self._requested = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def on_step_end(self, args, state, control, **kwargs):
        requested = self._requested
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([int(requested)], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            requested = bool(flag.item())
        if requested:
            self.interrupted = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class LossBar(TrainerCallback):
    """One progress bar per run with the latest training loss beside it. Trainer's own bar prints
    every logged step as a dict on a line of its own (logging_steps=1: a line per step)."""

    def __init__(self, description: str):
        self.description = description
        self.bar: Any = None

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.description, dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}", refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
