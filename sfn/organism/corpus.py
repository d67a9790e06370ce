"""The organism's data, generated from a seed: B's pretraining corpus, R's fine-tuning set, and the
held-out `organism-math` problems.

B reads world sentences, the single-step arithmetic table, and single-step word problems answered
directly. R additionally learns multi-step problems with worked solutions. Held-out problems are
chosen by their arithmetic (start and signed changes), so none is a training problem with other
names: R must compose the steps, not recall them.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from sfn.eval.prompts import DEFAULT_PLAIN_TEMPLATE
from sfn.organism.world import (
    FINAL_LINE,
    INSTRUCTION,
    WordProblem,
    arithmetic_fact,
    people,
    random_problem,
    world_sentence,
)

HELD_OUT_SHARE = 10  # one problem shape in this many is kept for the benchmark only
STEP_COUNTS = (2, 3)


@dataclass(frozen=True)
class CorpusSizes:
    pretraining_documents: int = 24000
    finetuning_problems: int = 4000
    benchmark_problems: int = 200


@dataclass(frozen=True)
class Corpus:
    pretraining: list[str]
    finetuning: list[tuple[str, str]]  # (prompt, worked solution)
    benchmark: list[WordProblem]


def prompt_of(question: str) -> str:
    """The plain-text prompt `sfn.eval` builds for organism-math, so training matches evaluation."""
    return DEFAULT_PLAIN_TEMPLATE.format(question=question, instruction=INSTRUCTION)


def is_held_out(problem: WordProblem) -> bool:
    digest = hashlib.sha256(repr(problem.key).encode()).digest()
    return digest[0] % HELD_OUT_SHARE == 0


def _pretraining_document(rng: random.Random, world) -> str:
    kind = rng.random()
    if kind < 0.35:
        return " ".join(world_sentence(rng, world) for _ in range(rng.randint(3, 6)))
    if kind < 0.6:
        return "\n".join(arithmetic_fact(rng) for _ in range(rng.randint(4, 8)))
    problem = random_problem(rng, 1)
    return f"{prompt_of(problem.question)} {problem.direct_answer}"


def _unique_problems(rng: random.Random, count: int, held_out: bool) -> list[WordProblem]:
    problems: list[WordProblem] = []
    seen: set[str] = set()
    while len(problems) < count:
        problem = random_problem(rng, rng.choice(STEP_COUNTS))
        if is_held_out(problem) == held_out and problem.question not in seen:
            seen.add(problem.question)
            problems.append(problem)
    return problems


def build_corpus(seed: int, sizes: CorpusSizes = CorpusSizes()) -> Corpus:
    """All of the organism's text for `seed`; the same seed gives the same corpus, always."""
    rng = random.Random(seed)
    world = people(rng)
    pretraining = [_pretraining_document(rng, world) for _ in range(sizes.pretraining_documents)]
    problems = finetuning_problems(seed, sizes.finetuning_problems)
    return Corpus(pretraining, finetuning_pairs(problems), benchmark_problems(seed, sizes.benchmark_problems))


def benchmark_problems(seed: int, count: int = CorpusSizes.benchmark_problems) -> list[WordProblem]:
    """organism-math's problems: held-out shapes only, from their own random stream."""
    return _unique_problems(random.Random(seed + 1), count, held_out=True)


def finetuning_problems(seed: int, count: int = CorpusSizes.finetuning_problems) -> list[WordProblem]:
    """R's training problems (their own random stream, so they can be regenerated alone)."""
    return _unique_problems(random.Random(seed + 2), count, held_out=False)


def finetuning_pairs(problems: list[WordProblem]) -> list[tuple[str, str]]:
    """(prompt, worked solution) as R is trained on them."""
    return [(prompt_of(p.question), p.worked_solution) for p in problems]


def write_training_records(seed: int, path: Path, count: int = CorpusSizes.finetuning_problems) -> tuple[Path, str]:
    """R's training data as question/reasoning/answer JSONL (what `sfn.freeze` reads), and the
    response template that turns a record back into exactly R's worked solution."""
    rows = []
    for problem in finetuning_problems(seed, count):
        reasoning = problem.worked_solution.rsplit("\n", 1)[0]
        rows.append({"question": problem.question, "reasoning": reasoning, "answer": str(problem.answer)})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path, "{reasoning}\n" + FINAL_LINE


def benchmark_rows(problems: list[WordProblem]) -> list[dict[str, str]]:
    """organism-math rows: id, question, answer (the number after 'The final answer is')."""
    return [{"id": f"organism-math-{index:04d}", "question": p.question, "answer": str(p.answer)} for index, p in enumerate(problems)]


def shipped_seed() -> int:
    """The seed the shipped organism was built from (its provenance.json)."""
    from sfn.errors import SfnError
    from sfn.organism.benchmark import SHIPPED_DIR

    provenance = SHIPPED_DIR / "provenance.json"
    if not provenance.is_file():
        raise SfnError(f"the organism's weights are missing from {SHIPPED_DIR}; run `sfn organism build --out {SHIPPED_DIR}`")
    return int(json.loads(provenance.read_text())["seed"])


def training_data(path: Path, seed: int | None = None) -> tuple[Path, str, int]:
    """R's training records for `seed` (default: the shipped organism's) written to `path`:
    (path, response template, number of records)."""
    path, template = write_training_records(shipped_seed() if seed is None else seed, Path(path))
    return path, template, CorpusSizes.finetuning_problems
