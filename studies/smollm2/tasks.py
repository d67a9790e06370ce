"""Procedurally generated reasoning tasks for the second SmolLM2 study (issue 19), in GSM8K's row format.

Each task draws problems from a seeded generator and writes worked solutions ending in `#### N`, so
`sfn eval --benchmark gsm8k --data FILE` scores them and `sfn freeze --data FILE` trains on them.
A problem is identified by its question text: `split` keeps the held-out problems out of the
training ones, and `pilot.py` measures the base model on each task to pick one where B is neither
at the floor nor at the ceiling.

    python studies/smollm2/tasks.py --task chain_sum --count 100 --seed 0 --out runs/chain_sum.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

NAMES = ("Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun")
ITEMS = ("apples", "marbles", "stickers", "coins", "books", "pens", "shells", "cards")


def chain_sum(rng: random.Random) -> dict[str, str]:
    """Four to six signed two-digit terms, summed left to right with every partial sum written out."""
    terms = [rng.randint(10, 99) for _ in range(rng.randint(4, 6))]
    signs = ["+"] + [rng.choice("+-") for _ in terms[1:]]
    total, steps = 0, []
    for sign, term in zip(signs, terms):
        before, total = total, total + term if sign == "+" else total - term
        steps.append(f"{before} {sign} {term} = {total}" if steps else f"Start with {term}.")
    expression = " ".join(f"{sign} {term}" for sign, term in zip(signs, terms)).removeprefix("+ ")
    return {"question": f"Compute {expression}.", "answer": "\n".join(steps) + f"\n#### {total}"}


def word_problem(rng: random.Random) -> dict[str, str]:
    """Three steps about one person's items: buys some, gives some away, then buys packs of a size."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    start, bought, given = rng.randint(5, 40), rng.randint(2, 20), rng.randint(1, 10)
    packs, size = rng.randint(2, 5), rng.randint(2, 6)
    after_buying = start + bought
    after_giving = after_buying - given
    total = after_giving + packs * size
    question = (f"{name} has {start} {item}. {name} buys {bought} more, then gives {given} to a friend, and then buys "
                f"{packs} packs of {size} {item} each. How many {item} does {name} have now?")
    answer = (f"{name} has {start} + {bought} = {after_buying} {item} after buying.\n"
              f"After giving {given} away: {after_buying} - {given} = {after_giving}.\n"
              f"The packs hold {packs} * {size} = {packs * size}.\n"
              f"In all: {after_giving} + {packs * size} = {total}.\n#### {total}")
    return {"question": question, "answer": answer}


def linear_equation(rng: random.Random) -> dict[str, str]:
    """a*x + b = c with a whole solution x."""
    a, x, b = rng.randint(2, 9), rng.randint(-12, 15), rng.randint(-30, 30)
    c = a * x + b
    sign = "+" if b >= 0 else "-"
    answer = (f"Subtract {b} from both sides: {a}x = {c} - {b} = {c - b}.\n" if b >= 0 else
              f"Add {-b} to both sides: {a}x = {c} + {-b} = {c - b}.\n") + f"Divide by {a}: x = {x}.\n#### {x}"
    return {"question": f"Solve for x: {a}x {sign} {abs(b)} = {c}.", "answer": answer}


def short_sum(rng: random.Random) -> dict[str, str]:
    """Three positive terms under 50, summed with the partial sum written out (after B failed chain sums)."""
    a, b, c = (rng.randint(2, 49) for _ in range(3))
    return {"question": f"Compute {a} + {b} + {c}.", "answer": f"{a} + {b} = {a + b}\n{a + b} + {c} = {a + b + c}\n#### {a + b + c}"}


def two_step(rng: random.Random) -> dict[str, str]:
    """Two steps with numbers under 20: buys some, gives some away (after B failed three-step word problems)."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    start, bought = rng.randint(3, 19), rng.randint(2, 19)
    given = rng.randint(1, start + bought - 1)
    question = f"{name} has {start} {item}. {name} buys {bought} more and then gives {given} away. How many {item} are left?"
    answer = f"{start} + {bought} = {start + bought}.\n{start + bought} - {given} = {start + bought - given}.\n#### {start + bought - given}"
    return {"question": question, "answer": answer}


TASKS: dict[str, Callable[[random.Random], dict[str, str]]] = {
    "chain_sum": chain_sum, "word_problem": word_problem, "linear_equation": linear_equation,
    "short_sum": short_sum, "two_step": two_step}


def problems(task: str, seed: int) -> Iterator[dict[str, str]]:
    """The task's problems in a fixed order for `seed`, each question once."""
    rng, seen = random.Random(f"{task}:{seed}"), set()
    while True:
        row = TASKS[task](rng)
        if row["question"] not in seen:
            seen.add(row["question"])
            yield row


def split(task: str, seed: int, held_out: int, train: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(held-out, training) problems: the first `held_out` of the sequence, then `train` more; no question in both."""
    drawn = problems(task, seed)
    test = [next(drawn) for _ in range(held_out)]
    return test, [next(drawn) for _ in range(train)]


FEW_SHOT_STOP = "\n\nQuestion:"  # where a base model starts a next example after its answer


def few_shot_template(task: str, shots: int, excluded: list[dict[str, str]]) -> str:
    """A plain prompt of `shots` worked solutions (seed 1, none of them an `excluded` problem), then the question."""
    return example_prompt(examples(task, 1, shots, excluded)).replace("{", "{{").replace("}", "}}") + "Question: {question}\nAnswer:"


def examples(task: str, seed: int, count: int, excluded: list[dict[str, str]]) -> list[dict[str, str]]:
    """The first `count` problems of `seed`'s sequence that are not `excluded` (by question)."""
    skip, chosen = {row["question"] for row in excluded}, []
    for row in problems(task, seed):
        if len(chosen) == count:
            return chosen
        if row["question"] not in skip:
            chosen.append(row)
    raise AssertionError("unreachable: the sequence is endless")


def example_prompt(rows: list[dict[str, str]]) -> str:
    return "".join(f"Question: {row['question']}\nAnswer: {row['answer']}\n\n" for row in rows)


def probe_rows(task: str, count: int, shots: int, excluded: list[dict[str, str]]) -> list[dict[str, str]]:
    """The map's task probe ({prompt, text} rows): `count` problems of seed 2 that are not `excluded` (the
    study's held-out and training problems), each prompted as in the evaluation, with its worked solution,
    the text R was trained to write, as the text scored token by token."""
    prompt = example_prompt(examples(task, 1, shots, excluded))
    return [{"prompt": f"{prompt}Question: {row['question']}\nAnswer:", "text": " " + row["answer"]}
            for row in examples(task, 2, count, excluded)]


def write_jsonl(rows: list[dict[str, str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    test, _ = split(args.task, args.seed, args.count, 0)
    print(f"wrote {write_jsonl(test, args.out)}")


if __name__ == "__main__":
    main()
