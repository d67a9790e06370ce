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
