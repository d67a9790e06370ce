"""Per-architecture tensor-name rules: which tensor is which canonical kind, and how fused tensors split.

A rule's pattern matches the end of a tensor name (any prefix such as `model.` or
`model.language_model.` is allowed), with named groups `layer` and `param`. A fused rule returns, for a
tensor, the canonical kinds it holds and the output rows (in the Hugging Face [out, in] orientation)
of each, computed from the config and the stored shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sfn.errors import SfnError

RowRanges = tuple[tuple[int, int], ...]
# (config, number of output rows, tensor name) -> [(kind, rows of that kind)]
FusedSplit = Callable[[Mapping[str, Any], int, str], list[tuple[str, RowRanges]]]

_PARAM = r"\.(?P<param>weight|bias)"


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    kind: str | None  # None for fused rules
    fused: FusedSplit | None = None
    transposed: bool = False  # stored [in, out], as GPT-2's Conv1D


def rule(suffix: str, kind: str | None = None, *, fused: FusedSplit | None = None, transposed: bool = False) -> Rule:
    return Rule(re.compile(r"(?:.+\.)?" + suffix + _PARAM), kind, fused, transposed)


def _config_int(config: Mapping[str, Any], tensor: str, *keys: str) -> int:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int):
            return value
    raise SfnError(
        f"splitting fused tensor {tensor!r} needs {' or '.join(keys)} from the model config, which is missing; "
        "put the model's config.json next to its weights"
    )


def _check_total(tensor: str, rows: int, expected: int, what: str) -> None:
    if rows != expected:
        raise SfnError(f"fused tensor {tensor!r} has {rows} output rows but the config implies {expected} ({what})")


def split_qkv_blocks(config: Mapping[str, Any], rows: int, tensor: str) -> list[tuple[str, RowRanges]]:
    """Phi-3 `qkv_proj`: all query rows, then key rows, then value rows (grouped-query aware)."""
    heads = _config_int(config, tensor, "num_attention_heads", "n_head")
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or _config_int(config, tensor, "hidden_size", "n_embd") // heads
    q, kv = heads * head_dim, kv_heads * head_dim
    _check_total(tensor, rows, q + 2 * kv, f"{heads} query and {kv_heads} key/value heads of size {head_dim}")
    return [("q", ((0, q),)), ("k", ((q, q + kv),)), ("v", ((q + kv, q + 2 * kv),))]


def split_thirds(config: Mapping[str, Any], rows: int, tensor: str) -> list[tuple[str, RowRanges]]:
    """GPT-2 `c_attn`: equal q, k, v blocks."""
    if rows % 3:
        raise SfnError(f"fused tensor {tensor!r} has {rows} output rows, not divisible into q, k, v")
    third = rows // 3
    return [("q", ((0, third),)), ("k", ((third, 2 * third),)), ("v", ((2 * third, rows),))]


def split_qkv_per_head(config: Mapping[str, Any], rows: int, tensor: str) -> list[tuple[str, RowRanges]]:
    """GPT-NeoX `query_key_value`: for each head, its q rows, then its k rows, then its v rows."""
    heads = _config_int(config, tensor, "num_attention_heads")
    if rows % (3 * heads):
        raise SfnError(f"fused tensor {tensor!r} has {rows} output rows, not 3 x {heads} heads")
    size = rows // (3 * heads)
    starts = [h * 3 * size for h in range(heads)]
    return [(kind, tuple((s + i * size, s + (i + 1) * size) for s in starts)) for i, kind in enumerate("qkv")]


def split_gate_up(config: Mapping[str, Any], rows: int, tensor: str) -> list[tuple[str, RowRanges]]:
    """Phi-3 `gate_up_proj`: gate rows, then up rows (the modelling code chunks the output in two)."""
    if rows % 2:
        raise SfnError(f"fused tensor {tensor!r} has an odd number of output rows ({rows})")
    return [("gate", ((0, rows // 2),)), ("up", ((rows // 2, rows),))]


_LAYER = r"layers\.(?P<layer>\d+)\."
_ATTN = _LAYER + r"self_attn\."

LLAMA_RULES = [
    rule(_ATTN + "q_proj", "q"),
    rule(_ATTN + "k_proj", "k"),
    rule(_ATTN + "v_proj", "v"),
    rule(_ATTN + "o_proj", "o"),
    rule(_ATTN + "q_norm", "q_norm"),
    rule(_ATTN + "k_norm", "k_norm"),
    rule(_LAYER + r"mlp\.gate_proj", "gate"),
    rule(_LAYER + r"mlp\.up_proj", "up"),
    rule(_LAYER + r"mlp\.down_proj", "down"),
    rule(_LAYER + "input_layernorm", "attn_norm"),
    rule(_LAYER + "post_attention_layernorm", "mlp_norm"),
    rule("embed_tokens", "embed"),
    rule("lm_head", "head"),
    rule("norm", "final_norm"),
]
# Gemma2/3 norm both sides of each block: `post_attention_layernorm` is the attention output's norm
# and `pre_feedforward_layernorm` is what feeds the MLP.
GEMMA2_RULES = [
    rule(_LAYER + "post_attention_layernorm", "post_attn_norm"),
    rule(_LAYER + "pre_feedforward_layernorm", "mlp_norm"),
    rule(_LAYER + "post_feedforward_layernorm", "post_mlp_norm"),
    *LLAMA_RULES,
]
PHI3_RULES = [
    rule(_ATTN + "qkv_proj", fused=split_qkv_blocks),
    rule(_LAYER + r"mlp\.gate_up_proj", fused=split_gate_up),
    *LLAMA_RULES,
]
_H = r"h\.(?P<layer>\d+)\."
GPT2_RULES = [
    rule(_H + r"attn\.c_attn", fused=split_thirds, transposed=True),
    rule(_H + r"attn\.c_proj", "o", transposed=True),
    rule(_H + r"mlp\.c_fc", "fc_in", transposed=True),
    rule(_H + r"mlp\.c_proj", "fc_out", transposed=True),
    rule(_H + "ln_1", "attn_norm"),
    rule(_H + "ln_2", "mlp_norm"),
    rule("wte", "embed"),
    rule("wpe", "pos_embed"),
    rule("ln_f", "final_norm"),
    rule("lm_head", "head"),
]
NEOX_RULES = [
    rule(_LAYER + r"attention\.query_key_value", fused=split_qkv_per_head),
    rule(_LAYER + r"attention\.dense", "o"),
    rule(_LAYER + r"mlp\.dense_h_to_4h", "fc_in"),
    rule(_LAYER + r"mlp\.dense_4h_to_h", "fc_out"),
    rule(_LAYER + "input_layernorm", "attn_norm"),
    rule(_LAYER + "post_attention_layernorm", "mlp_norm"),
    rule("embed_in", "embed"),
    rule("embed_out", "head"),  # on disk; transformers names it lm_head in memory
    rule("lm_head", "head"),
    rule("final_layer_norm", "final_norm"),
]

@dataclass(frozen=True)
class Architecture:
    """What sfn knows about one architecture: its tensor-name rules and where its layers are.

    `layer_containers` name the module list holding the decoder layers (`model.layers`, GPT-2's
    `transformer.h`); `layer_count_keys` are the config keys holding their number. Layer removal
    (`sfn.registry.layers`) shortens exactly these, on disk and in memory.
    """

    rules: list[Rule]
    layer_containers: tuple[str, ...] = ("layers",)
    layer_count_keys: tuple[str, ...] = ("num_hidden_layers",)


_LLAMA = Architecture(LLAMA_RULES)
_GEMMA2 = Architecture(GEMMA2_RULES)
ARCHITECTURES: dict[str, Architecture] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "gemma": _LLAMA,
    "gemma2": _GEMMA2,
    "gemma3": _GEMMA2,
    "gemma3_text": _GEMMA2,
    "phi3": Architecture(PHI3_RULES),
    "gpt2": Architecture(GPT2_RULES, ("h",), ("n_layer",)),
    "gpt_neox": Architecture(NEOX_RULES),
}
# For an unknown architecture: the common naming schemes, most specific first, and every common
# place for the layers and their count.
GENERIC = Architecture(
    [*PHI3_RULES, *GPT2_RULES, *NEOX_RULES], ("layers", "h", "blocks"), ("num_hidden_layers", "n_layer", "num_layers")
)

# Tensors that are not parameters (attention-mask buffers, cached rotary frequencies).
IGNORED = re.compile(r"(?:.+\.)?(?:h\.\d+\.attn\.(?:masked_)?bias|attention\.(?:masked_)?bias|rotary_emb\.inv_freq)")


def architecture_for(model_type: str | None) -> tuple[Architecture, bool]:
    """The architecture of `model_type`, and whether it is the generic fallback."""
    if model_type and model_type in ARCHITECTURES:
        return ARCHITECTURES[model_type], False
    return GENERIC, True


def rules_for(model_type: str | None) -> tuple[list[Rule], bool]:
    """The rules for `model_type`, and whether they are the generic fallback."""
    architecture, generic = architecture_for(model_type)
    return architecture.rules, generic


def layer_count(config: Mapping[str, Any]) -> int | None:
    """The number of decoder layers the config states (None when it states none)."""
    architecture, _ = architecture_for(config.get("model_type"))
    for key in architecture.layer_count_keys:
        if isinstance(config.get(key), int):
            return config[key]
    return None
