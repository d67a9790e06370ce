"""The tiny random Llama the study scripts' smoke profiles run on, built once for the whole run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers as tf
from tiny_models import byte_tokenizer

CHAT = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = tf.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                            num_key_value_heads=2, vocab_size=320, bos_token_id=0, eos_token_id=1, pad_token_id=2)
    folder = tmp_path_factory.mktemp("tiny_base")
    tf.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    byte_tokenizer(CHAT).save_pretrained(folder)
    return folder
