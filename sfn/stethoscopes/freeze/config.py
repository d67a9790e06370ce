"""`FreezeConfig`: every setting of a Freeze run, checked once at entry (all problems reported together).

The defaults are the s1 recipe the paper trains with (Appendix A): learning rate 1e-5, weight decay
1e-4, batch 16, 5 epochs, cosine schedule with 5% warm-up, AdamW with beta2 0.95.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sfn.errors import SfnErrors, argument
from sfn.eval.benchmarks import BOXED_INSTRUCTION
from sfn.eval.prompts import TRAINING_FORMATS
from sfn.settings import refuse_other_settings, with_overrides
from sfn.stethoscopes.freeze.data import DEFAULT_RESPONSE_TEMPLATE, ROLES

SETTINGS_FILE = "freeze_settings.json"
# Settings that may differ between a run and its resumption: they change nothing already trained.
RESUMABLE_CHANGES = ("out", "resume", "plugin", "progress", "save_steps", "save_total_limit", "eval_benchmark",
                     "eval_data", "eval_limit", "eval_max_new_tokens", "report_overlay", "allow_pickle")


@dataclass
class FreezeConfig:
    """How to fine-tune: what trains, on what data, for how long, where results go.

    `train` is a preset (emb+head, emb+head+o, emb+head+qkvo, all) or any selector; `norms` adds every
    norm. `batch_size` is per process; the effective batch is batch_size x grad_accum x processes.
    `max_steps` (optimizer steps) overrides `epochs`. `heldout` examples of the data are kept out of
    training for the held-out loss; `eval_benchmark` (e.g. "gsm8k", with `eval_data` for a local file)
    adds a held-out score from `sfn.evaluate` at the end.
    """

    train: str = "emb+head+o"
    data: str | None = None
    out: str | None = None
    norms: bool = True
    columns: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    heldout: int = 32
    prompt_format: str = "auto"
    instruction: str = BOXED_INSTRUCTION
    response_template: str = DEFAULT_RESPONSE_TEMPLATE
    seq_len: int = 1024
    batch_size: int = 16
    grad_accum: int = 1
    epochs: float = 5.0
    max_steps: int | None = None
    lr: float = 1e-5
    weight_decay: float = 1e-4
    warmup_ratio: float = 0.05
    adam_beta2: float = 0.95
    scheduler: str = "cosine"
    seed: int = 0
    gradient_checkpointing: bool = False
    save_steps: int = 50
    save_total_limit: int = 2
    resume: bool = True
    plugin: bool = False
    eval_benchmark: str | None = None
    eval_data: str | None = None
    eval_limit: int = 50
    eval_max_new_tokens: int = 256
    report_overlay: bool = True
    progress: bool = True
    allow_pickle: bool = False  # load a pickled .bin checkpoint (runs its unpickler)

    def with_overrides(self, overrides: dict[str, Any]) -> "FreezeConfig":
        return with_overrides(self, overrides, "freeze")

    def validate(self) -> "FreezeConfig":
        """Raise `SfnErrors` listing every problem; return self when there is none."""
        problems: list[str] = []
        if not self.data:
            problems.append(f"no training data: pass {argument('data')}, a JSONL/JSON/CSV/Parquet file or a hub dataset id")
        if not self.out:
            problems.append(f"no output folder: pass {argument('out')}")
        if not str(self.train).strip():
            problems.append(f"{argument('train')} is empty: name a preset or a selector")
        unknown_roles = sorted(set(self.columns) - set(ROLES))
        if unknown_roles:
            problems.append(f"{argument('columns')}: unknown role(s) {unknown_roles}; the roles are question, reasoning and answer")
        if self.prompt_format not in TRAINING_FORMATS:
            problems.append(f"{argument('prompt_format', self.prompt_format, flag='--format')}: choose one of {', '.join(TRAINING_FORMATS)}")
        for name in ("seq_len", "batch_size", "grad_accum", "save_steps", "save_total_limit", "eval_limit", "eval_max_new_tokens"):
            if getattr(self, name) < 1:
                problems.append(f"{argument(name, flag='' if name == 'save_total_limit' else None)} must be at least 1, got {getattr(self, name)}")
        if self.heldout < 0:
            problems.append(f"{argument('heldout')} must not be negative, got {self.heldout}")
        if self.limit is not None and self.limit < 1:
            problems.append(f"{argument('limit')} must be at least 1, got {self.limit}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"{argument('max_steps')} must be at least 1, got {self.max_steps}")
        if self.max_steps is None and not self.epochs > 0:
            problems.append(f"{argument('epochs')} must be positive, got {self.epochs}")
        if not self.lr > 0:
            problems.append(f"{argument('lr')} must be positive, got {self.lr}")
        if self.weight_decay < 0:
            problems.append(f"{argument('weight_decay')} must not be negative, got {self.weight_decay}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"{argument('warmup_ratio')} must be in [0, 1), got {self.warmup_ratio}")
        if not 0 < self.adam_beta2 < 1:
            problems.append(f"adam_beta2 must be in (0, 1), got {self.adam_beta2}")
        if "{reasoning}" not in self.response_template or "{answer}" not in self.response_template:
            problems.append(f"{argument('response_template', flag='')} must contain {{reasoning}} and {{answer}}")
        if self.eval_data and not self.eval_benchmark:
            problems.append(f"{argument('eval_data')} needs {argument('eval_benchmark', flag='--eval')}, a benchmark name (e.g. gsm8k) that says how to score it")
        if problems:
            raise SfnErrors(problems, "invalid freeze settings")
        return self

    def record(self) -> dict[str, Any]:
        """The settings as JSON reads them back (for freeze_settings.json and resume checks)."""
        return json.loads(json.dumps(asdict(self)))


def _differing(previous: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    return sorted(
        key for key in set(previous) | set(settings) if key not in RESUMABLE_CHANGES and previous.get(key) != settings.get(key)
    )


def is_main_process() -> bool:
    """Whether this is the first (or only) process of a distributed run: the one that writes files."""
    return int(os.environ.get("RANK", "0")) == 0


def same_run(out_dir: Path, config: FreezeConfig, model_source: str) -> bool:
    """Whether `out_dir` holds a run with these settings (those that change what is trained)."""
    path = out_dir / SETTINGS_FILE
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(previous, dict) and not _differing(previous, {"model": model_source, **config.record()})


def check_resumable(out_dir: Path, config: FreezeConfig, model_source: str) -> None:
    """Write the run's settings, or check that a run already in `out_dir` used the same ones."""
    settings = {"model": model_source, **config.record()}
    path = out_dir / SETTINGS_FILE
    if path.is_file():
        previous = json.loads(path.read_text())
        refuse_other_settings(out_dir, previous, settings, _differing(previous, settings))
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))
