import torch

from sfn.eval.backends.hf import HFBackend

PROMPTS = ["What is 2+2?", "A much longer question about apples and oranges, please?", "Hi", "Count: 1, 2, 3"]


def test_batched_greedy_equals_one_at_a_time(tiny_model, tiny_tokenizer):
    limits = [12] * len(PROMPTS)
    batched = HFBackend(tiny_model, tiny_tokenizer, batch_size=4).generate(PROMPTS, limits)
    single = HFBackend(tiny_model, tiny_tokenizer, batch_size=1).generate(PROMPTS, limits)
    assert batched == single
    assert all(completion.num_tokens <= 12 for completion in batched)
    assert len({completion.text for completion in batched}) > 1  # the prompts matter


def test_matches_manual_greedy_decoding(tiny_model, tiny_tokenizer):
    backend = HFBackend(tiny_model, tiny_tokenizer, batch_size=2)
    [completion] = backend.generate(["Hi"], [6])
    ids = torch.tensor([backend.encode("Hi")])
    with torch.no_grad():
        for _ in range(6):
            next_id = tiny_model(input_ids=ids).logits[0, -1].argmax()
            ids = torch.cat([ids, next_id.view(1, 1)], dim=1)
    expected = tiny_tokenizer.decode(ids[0, len(backend.encode("Hi")) :])
    assert tiny_tokenizer.eos_token_id not in ids[0].tolist()  # the manual loop would not stop there
    assert completion.text == expected and completion.finish_reason == "length"


def test_per_prompt_limits_and_stop_strings(tiny_model, tiny_tokenizer):
    backend = HFBackend(tiny_model, tiny_tokenizer, batch_size=4)
    free = backend.generate(PROMPTS, [30, 5, 30, 30])
    assert free[1].num_tokens == 5 and free[1].finish_reason == "length"
    # Take a piece of what the model says anyway as a stop string: generation must stop there.
    text = free[0].text
    marker = text[10:13]
    [stopped] = backend.generate(PROMPTS[:1], [30], stop=[marker])
    assert stopped.finish_reason == "stop"
    assert stopped.text == text[: text.index(marker)]
    assert stopped.num_tokens <= len(backend.encode(text[: text.index(marker) + len(marker)])) + 1


def test_seeded_sampling_is_reproducible(tiny_model, tiny_tokenizer):
    def sample(seed):
        return HFBackend(tiny_model, tiny_tokenizer, do_sample=True, seed=seed).generate(PROMPTS, [10] * 4)

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_sampling_does_not_depend_on_batch_size_or_neighbours(tiny_model, tiny_tokenizer):
    seeds = [11, 22, 33, 44]

    def sample(batch_size, prompts, row_seeds):
        backend = HFBackend(tiny_model, tiny_tokenizer, batch_size=batch_size, do_sample=True, temperature=0.8, top_p=0.9)
        return backend.generate(prompts, [10] * len(prompts), seeds=row_seeds)

    together = sample(4, PROMPTS, seeds)
    assert together == sample(1, PROMPTS, seeds) == sample(3, PROMPTS, seeds)
    # A prompt's sample is its own: alone, or after other prompts, it is the same.
    assert sample(2, PROMPTS[2:], seeds[2:]) == together[2:]
    assert sample(4, PROMPTS, [12, 22, 33, 44])[0] != together[0]


def test_sampling_draws_from_the_tempered_nucleus(tiny_model, tiny_tokenizer):
    # Manual reference: softmax(logits / T), keep the top-p nucleus, draw with the row's generator.
    temperature, top_p, seed = 0.7, 0.8, 5
    backend = HFBackend(tiny_model, tiny_tokenizer, do_sample=True, temperature=temperature, top_p=top_p)
    [completion] = backend.generate(["Hi"], [8], seeds=[seed])
    generator = torch.Generator().manual_seed(seed)
    ids = torch.tensor([backend.encode("Hi")])
    with torch.no_grad():
        for _ in range(8):
            probabilities = torch.softmax(tiny_model(input_ids=ids).logits[0, -1] / temperature, dim=-1)
            ordered, order = probabilities.sort(descending=True)
            ordered[ordered.cumsum(0) - ordered >= top_p] = 0
            nucleus = torch.zeros_like(probabilities).scatter(0, order, ordered)  # back in vocabulary order
            next_id = torch.multinomial(nucleus, 1, generator=generator)
            ids = torch.cat([ids, next_id.view(1, 1)], dim=1)
    new = ids[0, len(backend.encode("Hi")) :].tolist()
    ends = [i for i, token in enumerate(new) if token == tiny_tokenizer.eos_token_id]
    expected = tiny_tokenizer.decode(new[: ends[0]] if ends else new)
    assert completion.text == expected


def test_min_new_tokens_forbids_an_immediate_end(tiny_model, tiny_tokenizer):
    backend = HFBackend(tiny_model, tiny_tokenizer)
    text = backend.generate(["Hi"], [6])[0].text
    first = text[0]  # the greedy first character, made a one-token stop string
    assert backend.generate(["Hi"], [6], stop=[first])[0] .num_tokens == 1
    [held] = backend.generate(["Hi"], [6], stop=[first], min_new_tokens=1)
    assert held.num_tokens >= 1 and not held.text.startswith(first)
