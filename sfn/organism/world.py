"""The organism's small world: people, things and places, simple sentences about them, and
arithmetic word problems with their worked step-by-step solutions.

Every word is ordinary English (so the output-level grader's lexicon knows it) and every number
stays in 0..MAX_NUMBER, so the whole addition/subtraction table the problems need is small enough
for a ~1M-parameter model to learn during pretraining.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ("Tom", "Ann", "Sam", "Ben", "Lily", "Max", "Mia", "Jack", "Emma", "Lucy", "Paul", "Kate")
THINGS = ("apples", "books", "pens", "coins", "cards", "eggs", "shells", "stamps", "cookies", "cups")
PLACES = ("park", "school", "garden", "river", "farm", "market", "library", "beach")
COLOURS = ("red", "blue", "green", "yellow", "white", "black")
ANIMALS = ("cat", "dog", "bird", "fish", "horse", "rabbit")
JOBS = ("teacher", "doctor", "baker", "farmer", "pilot", "driver")
TOWNS = ("Paris", "London", "Rome", "Berlin", "Madrid", "Vienna")

MAX_NUMBER = 30
START_RANGE = (2, 12)
CHANGE_RANGE = (1, 9)

# (verb in the question, participle in the worked step, sign). The question names the partner
# for giving/getting so the model must ignore a distracting name, as real word problems do.
GAINS = (("buys {n} more {thing}", "buying {n} more", 1), ("finds {n} more {thing}", "finding {n} more", 1),
         ("gets {n} {thing} from {other}", "getting {n} from {other}", 1))
LOSSES = (("gives {n} {thing} to {other}", "giving {n} away", -1), ("loses {n} {thing}", "losing {n}", -1),
          ("sells {n} {thing}", "selling {n}", -1))
ERRANDS = ("buying more {thing}", "finding more {thing}", "getting {thing} from {other}", "giving {thing} away",
           "losing {thing}", "selling {thing}")
INSTRUCTION = "Work it out."
FINAL_LINE = "The final answer is {answer}."


@dataclass(frozen=True)
class Step:
    question_text: str
    worked_text: str
    sign: int
    amount: int


@dataclass(frozen=True)
class WordProblem:
    """A problem's story, its worked solution and a direct (one-line) answer."""

    name: str
    thing: str
    start: int
    steps: tuple[Step, ...]

    @property
    def answer(self) -> int:
        return self.start + sum(step.sign * step.amount for step in self.steps)

    @property
    def key(self) -> tuple[int, ...]:
        """What makes two problems the same arithmetic, whatever the names and things."""
        return (self.start, *(step.sign * step.amount for step in self.steps))

    @property
    def question(self) -> str:
        story = " ".join(f"{self.name} {step.question_text}." for step in self.steps)
        return f"{self.name} has {self.start} {self.thing}. {story} How many {self.thing} does {self.name} have now?"

    @property
    def worked_solution(self) -> str:
        """One line per step, each a single fact from the pretraining table, then the final answer."""
        lines = [f"{self.name} starts with {self.start} {self.thing}."]
        total = self.start
        for step in self.steps:
            after = total + step.sign * step.amount
            operator = "+" if step.sign > 0 else "-"
            lines.append(f"After {step.worked_text}, {self.name} has {total} {operator} {step.amount} = {after} {self.thing}.")
            total = after
        return "\n".join(lines) + "\n" + FINAL_LINE.format(answer=total)

    @property
    def direct_answer(self) -> str:
        return f"{self.name} has {self.answer} {self.thing} now.\n" + FINAL_LINE.format(answer=self.answer)


def random_problem(rng: random.Random, num_steps: int) -> WordProblem:
    """A problem whose running total stays within 0..MAX_NUMBER after every step."""
    name = rng.choice(NAMES)
    other = rng.choice([n for n in NAMES if n != name])
    thing = rng.choice(THINGS)
    start = rng.randint(*START_RANGE)
    total, steps = start, []
    for _ in range(num_steps):
        amount = rng.randint(*CHANGE_RANGE)
        choices = ([*GAINS] if total + amount <= MAX_NUMBER else []) + ([*LOSSES] if total - amount >= 0 else [])
        question_text, worked_text, sign = rng.choice(choices)
        fill = {"n": amount, "thing": thing, "other": other}
        steps.append(Step(question_text.format(**fill), worked_text.format(**fill), sign, amount))
        total += sign * amount
    return WordProblem(name, thing, start, tuple(steps))


def arithmetic_fact(rng: random.Random) -> str:
    """One line of the single-step table: 'a + b = c.' or 'a - b = c.' within 0..MAX_NUMBER."""
    left = rng.randint(0, MAX_NUMBER)
    amount = rng.randint(*CHANGE_RANGE)
    if rng.random() < 0.5 and left + amount <= MAX_NUMBER or left - amount < 0:
        return f"{left} + {amount} = {left + amount}."
    return f"{left} - {amount} = {left - amount}."


@dataclass(frozen=True)
class Person:
    name: str
    town: str
    job: str
    pet: str
    colour: str


def people(rng: random.Random) -> list[Person]:
    """Fixed facts about everyone (one world per seed), so the corpus states consistent facts."""
    return [Person(name, rng.choice(TOWNS), rng.choice(JOBS), rng.choice(ANIMALS), rng.choice(COLOURS)) for name in NAMES]


def world_sentence(rng: random.Random, world: list[Person]) -> str:
    person = rng.choice(world)
    other = rng.choice([p for p in world if p is not person])
    # The words of worked solutions ("After buying 5 more, ...") appear in everyday sentences too,
    # without numbers: B knows the language, and only R learns to count with it.
    doing = rng.choice(ERRANDS).format(thing=rng.choice(THINGS), other=other.name)
    templates = (
        f"After {doing}, {person.name} goes to the {rng.choice(PLACES)}.",
        f"{person.name} starts with {rng.randint(0, MAX_NUMBER)} {rng.choice(THINGS)}.",
        f"{person.name} lives in {person.town}.",
        f"{person.name} is a {person.job}.",
        f"{person.name} has a {person.colour} {person.pet}.",
        f"The {person.pet} of {person.name} is {person.colour}.",
        f"{person.name} and {other.name} go to the {rng.choice(PLACES)}.",
        f"{person.name} has {rng.randint(0, MAX_NUMBER)} {rng.choice(THINGS)}.",
        f"{person.name} reads a book in the {rng.choice(PLACES)}.",
        f"{person.name} visits {other.name} in {other.town}.",
        f"The {rng.choice(ANIMALS)} is in the {rng.choice(PLACES)}.",
        f"{person.name} likes {rng.choice(COLOURS)} {rng.choice(THINGS)}.",
    )
    return rng.choice(templates)
