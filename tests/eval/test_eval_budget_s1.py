"""`--budget-style s1` against transcripts derived by hand from simplescaling/s1's harness
(its vLLM model's `thinking_n_ignore` loop), with a character-level scripted model whose special
tokens are single tokens, as s1 requires of its stop tokens."""

import re

from sfn.eval.backends.base import Completion
from sfn.eval.budget import generate_outputs
from sfn.eval.prompts import PROTOCOL_MARKERS

S1 = PROTOCOL_MARKERS["s1"]
R1 = PROTOCOL_MARKERS["r1"]
EOS = "<|im_end|>"
TOKEN = re.compile(r"<\|im_start\|>|<\|im_end\|>|</think>|<think>|.", re.S)


class CharTokenizer:
    """One token per character, except the special tokens."""

    chat_template = None
    bos_token = None

    def encode(self, text, add_special_tokens=False):
        return TOKEN.findall(text)

    def decode(self, tokens):
        return "".join(tokens)


class CharModel:
    """`script(context)` is what the model would write next; the first `min_new_tokens` tokens skip
    end of sequence and one-token stop strings (the model's next choice is the script's next token)."""

    def __init__(self, script):
        self.script = script
        self.tokenizer = CharTokenizer()
        self.calls = []

    def generate(self, prompts, max_new_tokens, stop=(), min_new_tokens=0):
        self.calls.append((list(prompts), list(max_new_tokens), list(stop), min_new_tokens))
        return [self._one(prompt, limit, stop, min_new_tokens) for prompt, limit in zip(prompts, max_new_tokens)]

    def _one(self, prompt, limit, stop, minimum):
        banned = {EOS, *(marker for marker in stop if len(TOKEN.findall(marker)) == 1)}
        tokens = TOKEN.findall(self.script(prompt))
        text, count = "", 0
        while tokens and count < limit:
            token = tokens.pop(0)
            if count < minimum and token in banned:
                continue
            count += 1
            if token == EOS:
                return Completion(text, count, "eos")
            text += token
            hits = [text.index(marker) for marker in stop if marker in text]
            if hits:
                return Completion(text[: min(hits)], count, "stop")
        return Completion(text, count, "length")


def test_s1_budget_runs_out_after_two_waits():
    def script(context):
        if context.endswith("Final Answer:"):
            return " 42" + EOS
        if context.endswith("cdWait"):
            return "efghijklmnopqrstuvwxyz0123"
        if context.endswith("abWait"):
            return "<|im_start|>cd<|im_start|>user"  # wants to stop at once: s1's min_tokens=1 forbids it
        if context.endswith(S1.start):
            return "ab<|im_start|>answer"
        raise AssertionError(f"unexpected context {context!r}")

    model = CharModel(script)
    prompt = "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n" + S1.start
    [generation] = generate_outputs(model, [prompt], max_new_tokens=60, thinking=S1, waits=2,
                                    max_thinking_tokens=20, style="s1")
    # Hand-derived from s1's loop: round 1 "ab" (stopped by <|im_start|>, which is dropped) + "Wait";
    # round 2 may not stop on its first token, so "cd" + "Wait"; round 3, the last, runs to its
    # own limit (the whole budget, 20). 6 + 6 + 20 = 32 tokens are cut to the budget's 20; the cut
    # text did not end in a newline, so "\n" + "<|im_start|>answer" + "\nFinal Answer:" follow.
    thinking = "abWaitcdWaitefghijkl"
    assert generation.text == thinking + "\n<|im_start|>answer\nFinal Answer: 42"
    assert generation.thinking_tokens == 20 and generation.waits == 2
    thinking_calls = model.calls[:3]
    assert [call[1] for call in thinking_calls] == [[20], [20], [20]]  # each round may use the whole budget
    assert all(call[2] == ["<|im_start|>"] and call[3] == 1 for call in thinking_calls)
    answer_prompt, answer_limit = model.calls[3][0][0], model.calls[3][1][0]
    assert answer_prompt == prompt + thinking + "\n<|im_start|>answer\nFinal Answer:"
    # The answer gets the rest of max_new_tokens: 60 - (20 + "\n" 1 + "<|im_start|>answer" 7 + "\nFinal Answer:" 14).
    assert answer_limit == 60 - 42
    assert generation.num_tokens == 42 + 4  # " 42" and the end of sequence


def test_s1_model_ends_thinking_on_the_last_round():
    def script(context):
        if context.endswith("<|im_start|>answer"):
            return "\n7" + EOS
        if context.endswith("abWait"):
            return "cd<|im_start|>answer"
        return "ab" + EOS  # end of sequence also ends a round, and is dropped like the stop token

    model = CharModel(script)
    [generation] = generate_outputs(model, ["Q" + S1.start], max_new_tokens=100, thinking=S1, waits=1,
                                    max_thinking_tokens=50, style="s1")
    # The model ended the last round itself: the end marker alone, no "Final Answer:".
    assert generation.text == "abWaitcd<|im_start|>answer\n7"
    assert generation.thinking_tokens == 8 and generation.waits == 1 and not generation.truncated


def test_s1_without_forcing_has_no_minimum_and_no_waits():
    model = CharModel(lambda context: "\n5" + EOS if context.endswith("answer") else "xy<|im_start|>answer")
    [generation] = generate_outputs(model, ["Q" + S1.start], max_new_tokens=30, thinking=S1, style="s1", forcing=False)
    assert generation.text == "xy<|im_start|>answer\n5"
    assert model.calls[0][3] == 0


def test_r1_style_keeps_the_end_of_thinking():
    def script(context):
        if context.endswith("</think>"):
            return "\n\nThe answer is \\boxed{3}." + EOS
        if context.endswith("Wait"):
            return "</think>checked</think>"  # an immediate end is not allowed right after the wait
        return "think</think>"

    model = CharModel(script)
    [generation] = generate_outputs(model, ["Q<think>\n"], max_new_tokens=200, thinking=R1, waits=1, style="r1")
    assert generation.text == "thinkWaitchecked</think>\n\nThe answer is \\boxed{3}."
    assert generation.text.count("</think>") == 1


def test_sampled_forcing_does_not_depend_on_the_other_rows():
    class SeededCharModel(CharModel):
        def generate(self, prompts, max_new_tokens, stop=(), min_new_tokens=0, seeds=None):
            return [self._seeded(p, n, stop, min_new_tokens, seed) for p, n, seed in zip(prompts, max_new_tokens, seeds)]

        def _seeded(self, prompt, limit, stop, minimum, seed):
            self.script = lambda context: script(context, seed)
            return self._one(prompt, limit, stop, minimum)

    def script(context, seed):
        if context.endswith(("Final Answer:", "<|im_start|>answer")):
            return f" {seed % 97}" + EOS
        if context.startswith("A"):
            return "a" * 30  # runs out of budget in its first round
        return f"b{seed % 10}<|im_start|>"  # stops every round, so is forced on

    def run(prompts, seeds):
        return generate_outputs(SeededCharModel(script), prompts, max_new_tokens=80, thinking=S1, waits=2,
                                max_thinking_tokens=20, style="s1", seeds=seeds)

    together = run(["A" + S1.start, "B" + S1.start], [3, 4])
    assert together == run(["A" + S1.start], [3]) + run(["B" + S1.start], [4])
    assert together[1].waits == 2 and together[1] != run(["B" + S1.start], [5])[0]
