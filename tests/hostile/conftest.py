"""Hostile inputs built in code: tiny model pairs to damage and a chat model with a byte tokenizer.

Every case asserts the same three things: a named error before any work, nothing written, and the
inputs byte for byte as they were (`hostile_inputs.tree_digest` before and after).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tiny_models import build_tiny_model, byte_tokenizer

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(base, donor): two tiny llama directories of one config and different random weights."""
    root = tmp_path_factory.mktemp("hostile-pair")
    base, donor = root / "base", root / "donor"
    build_tiny_model("llama", seed=0).save_pretrained(base)
    build_tiny_model("llama", seed=1).save_pretrained(donor)
    return base, donor


@pytest.fixture
def own_pair(pair: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of `pair` that a test may damage."""
    base, donor = tmp_path / "base", tmp_path / "donor"
    shutil.copytree(pair[0], base)
    shutil.copytree(pair[1], donor)
    return base, donor


@pytest.fixture(scope="session")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny llama whose vocabulary is a byte tokenizer's, saved with that tokenizer (it can generate)."""
    import transformers as tf

    tokenizer = byte_tokenizer(CHAT_TEMPLATE)
    config = tf.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=0, eos_token_id=1, pad_token_id=2,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("hostile-chat")
    tf.AutoModelForCausalLM.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
