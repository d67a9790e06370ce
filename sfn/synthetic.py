"""Synthetic base/fine-tune pairs with known changes, for trying sfn and for benchmarks.

The tuned model moves every o_proj by a relative change of exactly +-`o_shift` per element (a
bimodal r, as the paper reports for reasoning fine-tunes) plus noise, and every other tensor by small
Gaussian noise only, so the Delta stethoscope has a known answer. Weights are random, not trained:
these pairs test the tooling, not a hypothesis about real models.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from sfn.errors import SfnError
from sfn.io.writer import honour_umask


@dataclass(frozen=True)
class PairShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int


SHAPES = {
    "tiny": PairShape(hidden=64, intermediate=176, layers=6, heads=4, kv_heads=2, vocab=512),
    # Shaped like Qwen2.5-0.5B and -1.5B (random weights).
    "qwen2.5-0.5b": PairShape(hidden=896, intermediate=4864, layers=24, heads=14, kv_heads=2, vocab=151936),
    "qwen2.5-1.5b": PairShape(hidden=1536, intermediate=8960, layers=28, heads=12, kv_heads=2, vocab=151936),
}


def qwen2_config(shape: PairShape, dtype: torch.dtype) -> dict:
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": shape.hidden,
        "intermediate_size": shape.intermediate,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.kv_heads,
        "vocab_size": shape.vocab,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "torch_dtype": str(dtype).removeprefix("torch."),
        "bos_token_id": 0,
        "eos_token_id": 1,
    }


def tensor_shapes(shape: PairShape) -> dict[str, tuple[int, ...]]:
    """Qwen2 tensor names and shapes (biases on q, k, v; tied embeddings, so no lm_head)."""
    head_dim = shape.hidden // shape.heads
    kv = shape.kv_heads * head_dim
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (shape.vocab, shape.hidden)}
    for i in range(shape.layers):
        p = f"model.layers.{i}."
        shapes.update(
            {
                p + "input_layernorm.weight": (shape.hidden,),
                p + "self_attn.q_proj.weight": (shape.hidden, shape.hidden),
                p + "self_attn.q_proj.bias": (shape.hidden,),
                p + "self_attn.k_proj.weight": (kv, shape.hidden),
                p + "self_attn.k_proj.bias": (kv,),
                p + "self_attn.v_proj.weight": (kv, shape.hidden),
                p + "self_attn.v_proj.bias": (kv,),
                p + "self_attn.o_proj.weight": (shape.hidden, shape.hidden),
                p + "post_attention_layernorm.weight": (shape.hidden,),
                p + "mlp.gate_proj.weight": (shape.intermediate, shape.hidden),
                p + "mlp.up_proj.weight": (shape.intermediate, shape.hidden),
                p + "mlp.down_proj.weight": (shape.hidden, shape.intermediate),
            }
        )
    shapes["model.norm.weight"] = (shape.hidden,)
    return shapes


def make_pair(
    out: str | Path,
    shape: str = "tiny",
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    o_shift: float = 0.02,
    noise: float = 0.002,
    shard_bytes: int = 2 * 2**30,
    progress: bool = True,
) -> tuple[Path, Path]:
    """Write `out/base` and `out/tuned` (Hugging Face directories); returns their paths."""
    if shape not in SHAPES:
        raise SfnError(f"unknown pair shape {shape!r}; choose one of {', '.join(SHAPES)}")
    spec = SHAPES[shape]
    out = Path(out)
    base_dir, tuned_dir = out / "base", out / "tuned"
    for directory in (base_dir, tuned_dir):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(qwen2_config(spec, dtype), indent=2))
    generator = torch.Generator().manual_seed(seed)
    shapes = tensor_shapes(spec)
    shards = _plan_shards(shapes, dtype.itemsize, shard_bytes)
    weight_map: dict[str, str] = {}
    bar = tqdm(total=len(shapes), desc=f"synthetic {shape} pair", disable=not progress, leave=False)
    for index, names in enumerate(shards, start=1):
        file = "model.safetensors" if len(shards) == 1 else f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        base_shard, tuned_shard = {}, {}
        for name in names:
            base = _init(name, shapes[name], generator)
            change = noise * torch.randn(shapes[name], generator=generator)
            if ".o_proj." in name:
                change += o_shift * (torch.randint(0, 2, shapes[name], generator=generator) * 2.0 - 1.0)
            base_shard[name], tuned_shard[name] = base.to(dtype), (base * (1 + change)).to(dtype)
            weight_map[name] = file
            bar.update()
        for directory, tensors in ((base_dir, base_shard), (tuned_dir, tuned_shard)):
            save_file(tensors, directory / file, metadata={"format": "pt"})
            honour_umask(directory / file)
    bar.close()
    if len(shards) > 1:
        total = sum(math.prod(dims) for dims in shapes.values()) * dtype.itemsize
        index_json = json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
        for directory in (base_dir, tuned_dir):
            (directory / "model.safetensors.index.json").write_text(index_json)
    return base_dir, tuned_dir


def _plan_shards(shapes: dict[str, tuple[int, ...]], itemsize: int, shard_bytes: int) -> list[list[str]]:
    shards: list[list[str]] = [[]]
    filled = 0
    for name, dims in shapes.items():
        nbytes = math.prod(dims) * itemsize
        if filled and filled + nbytes > shard_bytes:
            shards.append([])
            filled = 0
        shards[-1].append(name)
        filled += nbytes
    return shards


def _init(name: str, dims: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    if name.endswith("norm.weight"):
        return 1 + 0.1 * torch.randn(dims, generator=generator)
    return 0.02 * torch.randn(dims, generator=generator)
