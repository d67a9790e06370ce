"""Tiny models with a tiny byte-level tokenizer built in code, and a small reasoning data set."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tiny_models import SHARED_DATA, byte_tokenizer

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
GSM8K_TRAIN = SHARED_DATA / "gsm8k" / "train.jsonl"


def make_tokenizer():
    return byte_tokenizer(CHAT_TEMPLATE)


def make_model(arch: str = "llama", *, tied: bool = False, seed: int = 0):
    import transformers as tf

    tokenizer = make_tokenizer()
    common = dict(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=512, bos_token_id=0, eos_token_id=1, pad_token_id=2, tie_word_embeddings=tied,
    )
    configs = {
        "llama": lambda: tf.LlamaConfig(**common, num_key_value_heads=2),
        "qwen2": lambda: tf.Qwen2Config(**common, num_key_value_heads=2),
        "phi3": lambda: tf.Phi3Config(**common, num_key_value_heads=2),
        "gpt2": lambda: tf.GPT2Config(
            n_embd=32, n_layer=2, n_head=4, vocab_size=len(tokenizer), n_positions=512, bos_token_id=0, eos_token_id=1,
            pad_token_id=2, tie_word_embeddings=tied,
        ),
    }
    torch.manual_seed(seed)
    return tf.AutoModelForCausalLM.from_config(configs[arch]()), tokenizer


@pytest.fixture(scope="session")
def build_model() -> Callable[..., tuple]:
    """`build_model(arch="llama", tied=False)` -> a fresh tiny (model, tokenizer)."""
    return make_model


@pytest.fixture(scope="session")
def tiny_freeze_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`tiny_freeze_model(arch, tied=False)`: a saved model directory with its tokenizer (built once)."""
    cache: dict[tuple[str, bool], Path] = {}

    def build(arch: str = "llama", tied: bool = False) -> Path:
        if (arch, tied) not in cache:
            out = tmp_path_factory.mktemp(f"freeze-{arch}{'-tied' if tied else ''}")
            model, tokenizer = make_model(arch, tied=tied)
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
            cache[(arch, tied)] = out
        return cache[(arch, tied)]

    return build


def write_reasoning_data(path: Path, count: int = 24) -> Path:
    """Short arithmetic problems in GSM8K's format (worked solution with calculator marks, '#### N')."""
    with path.open("w") as handle:
        for i in range(count):
            a, b = i % 7 + 2, i % 5 + 3
            solution = f"{a} plus {b} is <<{a}+{b}={a + b}>>{a + b}.\n#### {a + b}"
            handle.write(json.dumps({"question": f"What is {a} plus {b}?", "answer": solution}) + "\n")
    return path


@pytest.fixture
def reasoning_data(tmp_path: Path) -> Path:
    return write_reasoning_data(tmp_path / "train.jsonl")


@pytest.fixture(scope="session")
def gsm8k_train() -> Path:
    if not GSM8K_TRAIN.is_file():
        pytest.skip(f"GSM8K training split not found at {GSM8K_TRAIN} (expected ../shared/data beside the checkout)")
    return GSM8K_TRAIN


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared, busy machine two threads spin-wait each
    other into seconds per step; restored afterwards for the other tests of the session."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
