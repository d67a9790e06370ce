import pytest

from sfn.errors import SfnError
from sfn.eval.budget import generate_outputs, parse_budget_forcing
from sfn.eval.prompts import THINKING_STYLES, ThinkingMarkers, build_prompt

R1 = THINKING_STYLES["r1"]


def thinks_then_answers(prompt: str) -> list[str]:
    """Three thinking words and the end marker; after the answer prefix, a boxed answer."""
    if prompt.endswith(R1.answer_prefix):
        return ["\\boxed{7}", "<eos>"]
    return ["step", "step", "step", "</think>", "never", "reached"]


def test_parse_budget_forcing():
    assert parse_budget_forcing("wait:2") == 2
    assert parse_budget_forcing(None) == 0
    assert parse_budget_forcing("none") == 0
    for bad in ("wait", "wait:x", "2", "wait:-1"):
        with pytest.raises(SfnError, match="wait:N"):
            parse_budget_forcing(bad)


def test_without_thinking_one_call(scripted):
    backend = scripted(lambda prompt: ["a", "b", "c", "d"])
    [generation] = generate_outputs(backend, ["Q"], max_new_tokens=3)
    assert generation.text == "a b c " and generation.num_tokens == 3 and generation.truncated
    assert len(backend.calls) == 1


def test_natural_end_of_thinking_then_answer(scripted):
    backend = scripted(thinks_then_answers)
    [generation] = generate_outputs(backend, ["Q<think>\n"], max_new_tokens=100, thinking=R1)
    assert generation.text == "step step step </think>\n\nFinal Answer:\\boxed{7} "
    assert generation.waits == 0
    assert generation.thinking_tokens == 4  # three words and the marker
    assert generation.num_tokens == 6  # plus the answer and the end of sequence
    assert not generation.truncated


def test_wait_suppresses_end_of_thinking_n_times(scripted):
    backend = scripted(thinks_then_answers)
    [generation] = generate_outputs(backend, ["Q<think>\n"], max_new_tokens=100, thinking=R1, waits=2)
    thinking, answer = generation.text.split("</think>")
    assert thinking == "step step step Waitstep step step Waitstep step step "  # appended literally
    assert answer == "\n\nFinal Answer:\\boxed{7} "
    assert generation.waits == 2 and generation.thinking_tokens == 12
    # Each thinking round continues from everything so far and stops at the end marker.
    thinking_calls = [call for call in backend.calls if call[2] == ["</think>"]]
    assert len(thinking_calls) == 3
    assert thinking_calls[2][0][0].endswith("step step step Wait")
    assert thinking_calls[2][1] == [100 - 8]


def test_custom_wait_text_and_end_of_sequence_counts_as_end_of_thinking(scripted):
    def script(prompt):
        if prompt.endswith(R1.answer_prefix):
            return ["42", "<eos>"]
        return ["hmm", "<eos>"]

    backend = scripted(script)
    [generation] = generate_outputs(backend, ["Q"], max_new_tokens=50, thinking=R1, waits=1, wait_text=" But wait,")
    assert generation.text.startswith("hmm  But wait,hmm </think>")
    assert generation.waits == 1


def test_max_thinking_tokens_ends_thinking_and_asks_for_answer(scripted):
    def endless(prompt):
        return ["\\boxed{3}", "<eos>"] if prompt.endswith(R1.answer_prefix) else ["think"] * 1000

    backend = scripted(endless)
    [generation] = generate_outputs(backend, ["Q"], max_new_tokens=100, thinking=R1, waits=2, max_thinking_tokens=5)
    assert generation.text == "think " * 5 + "</think>\n\nFinal Answer:\\boxed{3} "
    assert generation.thinking_tokens == 5 and generation.waits == 0
    assert not generation.truncated


def test_budget_forcing_in_a_batch_keeps_rows_apart(scripted):
    def per_prompt(prompt):
        if prompt.endswith(R1.answer_prefix):
            return ["A", "<eos>"]
        return ["x", "</think>"] if prompt.startswith("short") else ["y"] * 10 + ["</think>"]

    backend = scripted(per_prompt)
    short, long = generate_outputs(backend, ["short", "long"], max_new_tokens=30, thinking=R1, waits=1)
    assert short.text == "x Wait" + "x </think>\n\nFinal Answer:A "
    assert long.thinking_tokens == 22 and long.waits == 1


def test_answer_cut_off_is_truncated(scripted):
    def script(prompt):
        return ["z"] * 100 if prompt.endswith(R1.answer_prefix) else ["</think>"]

    [generation] = generate_outputs(scripted(script), ["Q"], max_new_tokens=10, thinking=R1, max_answer_tokens=4)
    assert generation.truncated and generation.num_tokens == 5


def test_prompts_chat_plain_and_thinking(tiny_tokenizer):
    chat = build_prompt("What is 2+2?", tiny_tokenizer, instruction="Box it.")
    assert chat == "<s><|user|>What is 2+2?\n\nBox it.\n<|assistant|>"
    plain = build_prompt("What is 2+2?", tiny_tokenizer, prompt_format="plain", instruction="Box it.")
    assert plain == "Question: What is 2+2?\nBox it.\nAnswer:"
    s1 = build_prompt("Q", tiny_tokenizer, thinking=THINKING_STYLES["s1"])
    assert s1.endswith("<|assistant|><|im_start|>think\n")
    markers = ThinkingMarkers("<think>\n", "</think>")
    already_open = build_prompt("Q", tiny_tokenizer, prompt_format="plain", plain_template="{question}<think>\n", thinking=markers)
    assert already_open == "Q<think>\n"


def test_chat_format_needs_a_template():
    class NoTemplate:
        chat_template = None

    with pytest.raises(SfnError, match="--format raw"):
        build_prompt("Q", NoTemplate())
