"""Tiny random models of every supported architecture, and ways to make tuned copies of them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
import transformers as tf
from safetensors.torch import load_file, save_file

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_COMMON = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4, vocab_size=64)
TINY_CONFIGS: dict[str, Callable[[], tf.PretrainedConfig]] = {
    "llama": lambda: tf.LlamaConfig(**_COMMON, num_key_value_heads=2),
    "mistral": lambda: tf.MistralConfig(**_COMMON, num_key_value_heads=2),
    "qwen2": lambda: tf.Qwen2Config(**_COMMON, num_key_value_heads=2),
    "qwen3": lambda: tf.Qwen3Config(**_COMMON, num_key_value_heads=2, head_dim=8),
    "gemma": lambda: tf.GemmaConfig(**_COMMON, num_key_value_heads=2, head_dim=8),
    "gemma2": lambda: tf.Gemma2Config(**_COMMON, num_key_value_heads=2, head_dim=8),
    "gemma3": lambda: tf.Gemma3TextConfig(**_COMMON, num_key_value_heads=2, head_dim=8),
    "phi3": lambda: tf.Phi3Config(**_COMMON, num_key_value_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=2),
    "gpt2": lambda: tf.GPT2Config(n_embd=32, n_layer=4, n_head=4, vocab_size=64, n_positions=64, bos_token_id=1, eos_token_id=2),
    "gpt_neox": lambda: tf.GPTNeoXConfig(**_COMMON),
}
ARCHITECTURES = list(TINY_CONFIGS)


def build_tiny_model(arch: str, seed: int = 0) -> tf.PreTrainedModel:
    torch.manual_seed(seed)
    return tf.AutoModelForCausalLM.from_config(TINY_CONFIGS[arch]()).eval()


def perturb_copy(src: Path, dst: Path, perturb: Callable[[str, torch.Tensor], torch.Tensor | None]) -> Path:
    """Copy the model at `src` to `dst`, replacing each tensor for which `perturb(name, t)` returns one."""
    dst.mkdir(parents=True, exist_ok=True)
    tensors = load_file(src / "model.safetensors")
    changed = {}
    for name, tensor in tensors.items():
        new = perturb(name, tensor.clone())
        changed[name] = (tensor if new is None else new).contiguous()
    save_file(changed, dst / "model.safetensors", metadata={"format": "pt"})
    for extra in src.iterdir():
        if extra.suffix == ".json":
            (dst / extra.name).write_text(extra.read_text())
    return dst


def write_config(directory: Path, **changes: object) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def two_point(t: torch.Tensor, shift: float, seed: int) -> torch.Tensor:
    """t * (1 +- shift): an element-wise relative change of exactly +-shift (a bimodal r)."""
    g = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, t.shape, generator=g).to(t.dtype) * 2 - 1
    return t * (1 + shift * signs)


def gaussian(t: torch.Tensor, scale: float, seed: int) -> torch.Tensor:
    """t plus N(0, scale^2) noise."""
    g = torch.Generator().manual_seed(seed)
    return t + scale * torch.randn(t.shape, generator=g).to(t.dtype)


def byte_tokenizer(chat_template: str):
    """A tokenizer built in code: every byte is a token (no merges), so any text round-trips;
    <s>, </s> and <pad> come first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = ["<s>", "</s>", "<pad>"]
    vocab = {token: index for index, token in enumerate(specials + sorted(alphabet))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tokenizer.chat_template = chat_template
    return tokenizer
