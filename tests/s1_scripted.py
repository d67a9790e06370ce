"""A character-level scripted model, and the budget-forcing cases that both sfn (tests/eval/
test_eval_budget_s1.py) and simplescaling/s1's own harness code (scripts/record_s1_transcripts.py,
which wrote tests/eval/data/s1_transcripts.json) run with it.

One token per character, except the special tokens, which are single tokens as s1 requires of its
stop tokens. A script maps the text so far to what the model writes next.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sfn.eval.backends.base import Completion

EOS = "<|im_end|>"
TOKEN = re.compile(r"<\|im_start\|>|<\|im_end\|>|</think>|<think>|.", re.S)
S1_START = "<|im_start|>think"  # what s1's harness appends to every prompt before thinking
CHAT_PROMPT = "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"


class CharTokenizer:
    chat_template = None
    bos_token = None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[str]:
        return TOKEN.findall(text)

    def decode(self, tokens: list[str]) -> str:
        return "".join(tokens)


class CharModel:
    """sfn's backend interface over a script; the first `min_new_tokens` tokens skip end of sequence
    and one-token stop strings (the model's next choice is the script's next token)."""

    def __init__(self, script: Callable[[str], str], context_length: int | None = None):
        self.script = script
        self.tokenizer = CharTokenizer()
        self.context_length = context_length
        self.calls: list[tuple[list[str], list[int], list[str], int]] = []

    def encode(self, prompt: str) -> list[str]:
        return TOKEN.findall(prompt)

    def generate(self, prompts, max_new_tokens, stop=(), min_new_tokens=0):
        self.calls.append((list(prompts), list(max_new_tokens), list(stop), min_new_tokens))
        return [self._one(prompt, limit, stop, min_new_tokens) for prompt, limit in zip(prompts, max_new_tokens)]

    def _one(self, prompt: str, limit: int, stop, minimum: int) -> Completion:
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


@dataclass(frozen=True)
class S1Case:
    """One run of s1's forcing: s1's `gen_kwargs` are max_gen_toks=max_new_tokens,
    max_tokens_thinking=max_thinking_tokens, thinking_n_ignore=waits, thinking_n_ignore_str=wait_text
    (left out when None), greedy; vLLM's max_model_len is context_length."""

    name: str
    prompts: tuple[str, ...]  # before S1_START, which s1 appends itself
    script: Callable[[str], str]
    waits: int
    max_thinking_tokens: int
    max_new_tokens: int
    context_length: int
    wait_text: str | None = "Wait"


def _runs_out_after_two_waits(context: str) -> str:
    if context.endswith("Final Answer:"):
        return " 42" + EOS
    if context.endswith("cdWait"):
        return "efghijklmnopqrstuvwxyz0123"
    if context.endswith("abWait"):
        return "<|im_start|>cd<|im_start|>user"  # wants to stop at once: s1's min_tokens=1 forbids it
    return "ab<|im_start|>answer"


def _ends_the_last_round(context: str) -> str:
    if context.endswith("<|im_start|>answer"):
        return "\n7" + EOS
    if context.endswith("Wait"):
        return "cd<|im_start|>answer"
    return "ab" + EOS  # end of sequence ends a round too (s1 stops on its `until`, the EOS string)


def _fills_the_context(context: str) -> str:
    if context.endswith("Final Answer:"):
        return " 42 is it" + EOS
    if context.endswith("Wait"):
        return "z" * 40  # past the context: vLLM stops it there
    return "y" * 25 + "<|im_start|>"


def _two_rows(context: str) -> str:
    if context.endswith("Final Answer:"):
        return " 9" + EOS
    if context.endswith("<|im_start|>answer"):
        return "\n5" + EOS
    if context.startswith("A"):
        return "a" * 30  # runs out in its first round
    if context.endswith("bWaitbWait"):
        return "c" * 15 + "<|im_start|>"  # stops in the last round, past the budget
    return "b<|im_start|>"


def _no_wait_text(context: str) -> str:
    if context.endswith("<|im_start|>answer"):
        return "\n3" + EOS
    if context.endswith("x"):
        return "yz<|im_start|>answer"
    return "x<|im_start|>"


CASES = (
    S1Case("runs_out_after_two_waits", (CHAT_PROMPT,), _runs_out_after_two_waits, waits=2, max_thinking_tokens=20,
           max_new_tokens=60, context_length=4096),
    S1Case("ends_the_last_round", ("Q\n",), _ends_the_last_round, waits=1, max_thinking_tokens=50,
           max_new_tokens=100, context_length=4096),
    S1Case("fills_the_context", ("Q\n",), _fills_the_context, waits=1, max_thinking_tokens=30,
           max_new_tokens=40, context_length=60),
    S1Case("two_rows", ("A\n", "B\n"), _two_rows, waits=2, max_thinking_tokens=20, max_new_tokens=80,
           context_length=4096),
    S1Case("no_wait_text", ("Q\n",), _no_wait_text, waits=1, max_thinking_tokens=40, max_new_tokens=40,
           context_length=4096, wait_text=None),
)
