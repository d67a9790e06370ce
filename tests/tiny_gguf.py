"""A tiny GGUF file written in code (2 layers, several quantization types), readable by transformers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

HIDDEN, FFN, LAYERS, HEADS, KV_HEADS, VOCAB = 64, 128, 2, 4, 2, 64


@dataclass(frozen=True)
class TinySpec:
    arch: str
    name: str = "tiny"  # general.name; transformers reads a llama file named exactly "mistral" as Mistral
    tied: bool = True
    qkv_bias: bool = False  # qwen2
    qk_norm: bool = False  # qwen3, gemma3
    post_norms: bool = False  # gemma2/3: norms after attention and after the MLP, stored as w + 1
    permute_qk: bool = True  # llama.cpp permutes q/k rows for llama only
    head_dim: int = HIDDEN // HEADS


SPECS = {
    "llama-tied": TinySpec("llama"),
    "llama-untied": TinySpec("llama", tied=False),
    "qwen2": TinySpec("qwen2", qkv_bias=True, permute_qk=False),
    # transformers reads no head_dim from a qwen3 GGUF, so it must be Qwen3Config's default
    "qwen3": TinySpec("qwen3", qk_norm=True, permute_qk=False, head_dim=128),
    "gemma3": TinySpec("gemma3", qk_norm=True, post_norms=True, permute_qk=False),
}


def llama_cpp_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Interleave the rotary halves of each head's rows, as llama.cpp's converter does for llama q/k."""
    halves = weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
    return halves.swapaxes(1, 2).reshape(weights.shape)


def write_tiny_gguf(path: Path, spec: TinySpec, seed: int = 0) -> Path:
    """A 2-layer model with F32, F16, Q8_0 and Q4_0 tensors, readable by transformers."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), spec.arch)
    writer.add_name(spec.name)
    writer.add_block_count(LAYERS)
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(spec.head_dim)
    writer.add_key_length(spec.head_dim)
    writer.add_value_length(spec.head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(VOCAB)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"<t{i}>" for i in range(VOCAB)])
    writer.add_token_scores([0.0] * VOCAB)
    writer.add_token_types([1] * VOCAB)

    def add(name: str, shape: tuple[int, ...], qtype: Q = Q.F32, n_head_permuted: int = 0) -> None:
        values = rng.standard_normal(shape, dtype=np.float32) * 0.5
        if n_head_permuted and spec.permute_qk:
            values = llama_cpp_permute(values, n_head_permuted)
        if qtype == Q.F32:
            writer.add_tensor(name, values)
        elif qtype == Q.F16:
            writer.add_tensor(name, values.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(values, qtype), raw_dtype=qtype)

    q_rows, kv_rows = HEADS * spec.head_dim, KV_HEADS * spec.head_dim
    add("token_embd.weight", (VOCAB, HIDDEN), Q.Q8_0)
    for i in range(LAYERS):
        add(f"blk.{i}.attn_norm.weight", (HIDDEN,))
        add(f"blk.{i}.attn_q.weight", (q_rows, HIDDEN), Q.Q4_0, n_head_permuted=HEADS)
        add(f"blk.{i}.attn_k.weight", (kv_rows, HIDDEN), Q.Q8_0, n_head_permuted=KV_HEADS)
        add(f"blk.{i}.attn_v.weight", (kv_rows, HIDDEN), Q.F16)
        if spec.qkv_bias:
            add(f"blk.{i}.attn_q.bias", (q_rows,))
            add(f"blk.{i}.attn_k.bias", (kv_rows,))
            add(f"blk.{i}.attn_v.bias", (kv_rows,))
        if spec.qk_norm:
            add(f"blk.{i}.attn_q_norm.weight", (spec.head_dim,))
            add(f"blk.{i}.attn_k_norm.weight", (spec.head_dim,))
        add(f"blk.{i}.attn_output.weight", (HIDDEN, q_rows), Q.Q8_0)
        add(f"blk.{i}.ffn_norm.weight", (HIDDEN,))
        if spec.post_norms:
            add(f"blk.{i}.post_attention_norm.weight", (HIDDEN,))
            add(f"blk.{i}.post_ffw_norm.weight", (HIDDEN,))
        add(f"blk.{i}.ffn_gate.weight", (FFN, HIDDEN), Q.Q4_0)
        add(f"blk.{i}.ffn_up.weight", (FFN, HIDDEN), Q.Q8_0)
        add(f"blk.{i}.ffn_down.weight", (HIDDEN, FFN), Q.F32)
    add("output_norm.weight", (HIDDEN,))
    if not spec.tied:
        add("output.weight", (VOCAB, HIDDEN), Q.Q8_0)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
