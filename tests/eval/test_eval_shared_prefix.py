"""Prefix sharing (`sfn/eval/backends/shared_prefix.py`) changes how prompts are prefilled, never what
is generated: greedy and seeded sampled completions equal those of prefilling every prompt whole, on
every supported architecture."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from sfn.eval.backends.hf import HFBackend
from sfn.eval.backends.shared_prefix import MIN_SHARED_TOKENS, common_prefix_length, layout, shared_prefix
from tiny_models import ARCHITECTURES

# A "few-shot block" of 40 words, then questions of different lengths (the word tokenizer: one word, one token).
PREFIX = " ".join(f"w{(7 * i) % 60}" for i in range(40))
QUESTIONS = ["w1 w2", "w3", "w4 w5 w6 w7 w8", "w9 w10 w11", "w12 w13 w14 w15"]
PROMPTS = [f"{PREFIX} {question}" for question in QUESTIONS]


def test_the_common_prefix_is_counted_in_tokens_and_leaves_each_prompt_one_of_its_own():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5, 6], [1, 2, 9]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the shorter prompt keeps its last token
    assert common_prefix_length([[5, 1], [6, 1]]) == 0


def test_the_layout_puts_the_prefix_first_and_each_rows_own_tokens_last():
    class Shared:
        length = 2

    ids, mask = layout([[1, 2, 3], [1, 2, 4, 5, 6]], pad_id=0, shared=Shared())
    assert ids.tolist() == [[1, 2, 0, 0, 3], [1, 2, 4, 5, 6]]
    assert mask.tolist() == [[1, 1, 0, 0, 1], [1, 1, 1, 1, 1]]
    plain_ids, plain_mask = layout([[1, 2, 3], [1, 2, 4, 5, 6]], pad_id=0, shared=None)
    assert plain_ids.tolist() == [[0, 0, 1, 2, 3], [1, 2, 4, 5, 6]] and plain_mask[0].tolist() == [0, 0, 1, 1, 1]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_shared_prefix_generates_what_whole_prompts_do(arch, model_pair):
    base, _ = model_pair(arch)
    # The word tokenizer itself: AutoTokenizer would pick the architecture's own tokenizer class.
    model, tokenizer = AutoModelForCausalLM.from_pretrained(base).eval(), PreTrainedTokenizerFast.from_pretrained(base)
    encoded = [HFBackend(model, tokenizer).encode(prompt) for prompt in PROMPTS]
    shared = shared_prefix(model, encoded)
    assert shared is not None and shared.length == common_prefix_length(encoded) >= MIN_SHARED_TOKENS
    limits = [12, 12, 6, 12, 12]
    for options in ({}, {"do_sample": True, "temperature": 0.9, "seed": 3}):
        whole = HFBackend(model, tokenizer, batch_size=2, share_prefix=False, **options).generate(PROMPTS, limits)
        sharing = HFBackend(model, tokenizer, batch_size=2, **options).generate(PROMPTS, limits)
        assert sharing == whole, (arch, options)
    assert len({completion.text for completion in whole}) > 1  # the questions matter


def test_a_short_common_prefix_or_one_prompt_is_prefilled_whole(tiny_model, tiny_tokenizer):
    backend = HFBackend(tiny_model, tiny_tokenizer)
    assert shared_prefix(tiny_model, [backend.encode(p) for p in ("Question: 1+1?", "Question: 2+2?")]) is None
    assert shared_prefix(tiny_model, [backend.encode(PREFIX + " w1")]) is None
    prompts = [f"{'Worked example. ' * 4}Q{index}:" for index in range(3)]
    # The cache handed to each batch is a copy: the second batch starts from the prefix alone, not from
    # the prefix with the first batch's tokens appended.
    prompts = [f"{'Worked example. ' * 4}Q{index}:" for index in range(3)]
    sharing = HFBackend(tiny_model, tiny_tokenizer, batch_size=2).generate(prompts, [8] * 3)
    assert sharing == HFBackend(tiny_model, tiny_tokenizer, batch_size=3, share_prefix=False).generate(prompts, [8] * 3)
