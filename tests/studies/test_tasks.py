"""The generated tasks of the second SmolLM2 study: right answers, GSM8K's row format, no problem in
both the held-out and the training set, and the same problems for the same seed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "studies" / "smollm2"))

from tasks import TASKS, problems, split  # noqa: E402

from sfn.eval.benchmarks import gsm8k_reference  # noqa: E402


def solved(task: str, question: str) -> int:
    """The answer worked out from the question's own numbers, independently of the generator."""
    numbers = [int(n) for n in re.findall(r"-?\d+", question)]
    if task == "short_sum":
        return sum(numbers)
    if task == "two_step":
        start, bought, given = numbers
        return start + bought - given
    if task == "chain_sum":
        terms = re.findall(r"([+-]?)\s*(\d+)", question.removeprefix("Compute ").rstrip("."))
        return sum(-int(n) if sign == "-" else int(n) for sign, n in terms)
    if task == "linear_equation":
        a, sign, b, c = re.fullmatch(r"Solve for x: (\d+)x ([+-]) (\d+) = (-?\d+)\.", question).groups()
        return (int(c) - (int(b) if sign == "+" else -int(b))) // int(a)
    start, bought, given, packs, size = numbers
    return start + bought - given + packs * size


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_worked_solution_ends_in_the_right_answer(task: str) -> None:
    for row, _ in zip(problems(task, seed=3), range(300)):
        assert gsm8k_reference(row["answer"]) == str(solved(task, row["question"])), row


@pytest.mark.parametrize("task", sorted(TASKS))
def test_held_out_and_training_problems_share_no_question(task: str) -> None:
    test, train = split(task, seed=0, held_out=500, train=2000)
    assert len(test) == 500 and len(train) == 2000
    assert not {row["question"] for row in test} & {row["question"] for row in train}
    assert len({row["question"] for row in train}) == 2000
    assert split(task, seed=0, held_out=500, train=10)[0] == test  # same seed, same held-out set
    assert split(task, seed=1, held_out=500, train=0)[0] != test


def test_the_pilots_few_shot_prompt_holds_no_held_out_problem() -> None:
    from tasks import few_shot_template

    held_out = split("short_sum", seed=0, held_out=100, train=0)[0]
    # Seed 1's first problems, with one of them put into the held-out set: the prompt must skip it.
    first = [row for row, _ in zip(problems("short_sum", seed=1), range(2))]
    template = few_shot_template("short_sum", 3, held_out + first[:1])
    prompt = template.format(question="Compute 1 + 2 + 3.")
    questions = re.findall(r"Question: (.*)", prompt)
    assert len(questions) == 4 and questions[-1] == "Compute 1 + 2 + 3."
    assert first[0]["question"] not in questions and first[1]["question"] in questions
    assert not {row["question"] for row in held_out} & set(questions[:3])
    assert prompt.count("#### ") == 3 and prompt.endswith("Answer:")
