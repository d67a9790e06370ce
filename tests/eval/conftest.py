"""Tiny models built in code (never downloaded) and a scripted fake backend whose tokens are known."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

from sfn.eval.backends.base import Completion
from tiny_models import byte_tokenizer

import os

# ../shared/data beside the checkout, or wherever SFN_SHARED_DATA points (git worktrees live elsewhere).
SHARED_DATA = Path(os.environ.get("SFN_SHARED_DATA", Path(__file__).parents[2].parent / "shared/data"))
GSM8K_TEST = SHARED_DATA / "gsm8k/test.jsonl"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="session")
def gsm8k_test() -> Path:
    if not GSM8K_TEST.is_file():
        pytest.skip(f"GSM8K test split not found at {GSM8K_TEST} (expected ../shared/data beside the checkout, or set SFN_SHARED_DATA)")
    return GSM8K_TEST


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return byte_tokenizer(CHAT_TEMPLATE)


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        # Large weights make logits peaked, so greedy choices are far from ties.
        initializer_range=0.5,
        bos_token_id=tiny_tokenizer.bos_token_id,
        eos_token_id=tiny_tokenizer.eos_token_id,
        pad_token_id=tiny_tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config).eval()


class ScriptedTokenizer:
    """Enough of a tokenizer for prompting: a chat template that is plain concatenation."""

    chat_template = "scripted"
    bos_token = None

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=False):
        return "".join(f"[{m['role']}] {m['content']}\n" for m in messages) + "[assistant] "


class ScriptedBackend:
    """A fake model: its tokens are words, and `script(prompt)` says which words come next.

    The word "<eos>" ends the sequence. Records every call so tests can check what was asked.
    """

    def __init__(self, script: Callable[[str], list[str]]):
        self.script = script
        self.tokenizer = ScriptedTokenizer()
        self.calls: list[tuple[list[str], list[int], list[str]]] = []

    def generate(self, prompts: Sequence[str], max_new_tokens: Sequence[int], stop: Sequence[str] = ()) -> list[Completion]:
        self.calls.append((list(prompts), list(max_new_tokens), list(stop)))
        return [self._one(prompt, limit, stop) for prompt, limit in zip(prompts, max_new_tokens)]

    def _one(self, prompt: str, limit: int, stop: Sequence[str]) -> Completion:
        text = ""
        for count, word in enumerate(self.script(prompt)[:limit], start=1):
            if word == "<eos>":
                return Completion(text, count, "eos")
            text += word + " "
            for marker in stop:
                if marker in text:
                    return Completion(text[: text.index(marker)], count, "stop")
        return Completion(text, min(limit, len(self.script(prompt))), "length")


@pytest.fixture
def scripted():
    return ScriptedBackend
