"""The maps run hundreds of passes of a 32-wide model: with one intra-op thread they take a tenth of
the time on a busy 2-core machine (two threads spin against each other on such small matrices).
`planted_pair` and `probe_file` are the maps' tiny pair and probe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers as tf

from tiny_models import byte_tokenizer


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


PLANTED = "model.layers.2.self_attn.o_proj.weight"


@pytest.fixture(scope="module")
def planted_pair(tmp_path_factory) -> tuple[Path, Path]:
    """B, and R = B with o_proj of layer 2 (only) moved: the map must find o@2."""
    tokenizer = byte_tokenizer(None)
    config = tf.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                            bos_token_id=0, eos_token_id=1, pad_token_id=2)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(config)
    root = tmp_path_factory.mktemp("planted")
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    with torch.no_grad():
        weight = dict(model.named_parameters())[PLANTED]
        weight.add_(torch.randn_like(weight) * 0.5)
    model.save_pretrained(root / "tuned")
    tokenizer.save_pretrained(root / "tuned")
    return root / "base", root / "tuned"


@pytest.fixture(scope="module")
def probe_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("probe") / "probe.jsonl"
    rows = [{"prompt": f"Question {i}: what is {i} plus {i + 2}?", "text": f" It is {2 * i + 2}. The answer is {2 * i + 2}."}
            for i in range(6)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
