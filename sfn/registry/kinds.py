"""Canonical module kinds, the groups users select them by, and the aliases they may type."""

from __future__ import annotations

ATTENTION_KINDS = ("q", "k", "v", "o")
MLP_KINDS = ("gate", "up", "down", "fc_in", "fc_out")
NORM_KINDS = (
    "attn_norm",
    "mlp_norm",
    "post_attn_norm",  # Gemma2/3: norm applied to the attention output
    "post_mlp_norm",  # Gemma2/3: norm applied to the MLP output
    "q_norm",  # Qwen3, Gemma3: per-head norm of queries
    "k_norm",
    "final_norm",
)
EMBEDDING_KINDS = ("embed", "pos_embed", "head")
KINDS: tuple[str, ...] = ATTENTION_KINDS + MLP_KINDS + NORM_KINDS + EMBEDDING_KINDS
LINEAR_KINDS = ATTENTION_KINDS + MLP_KINDS

GROUPS: dict[str, tuple[str, ...]] = {
    "attn": ATTENTION_KINDS,
    "qkv": ("q", "k", "v"),
    "mlp": MLP_KINDS,
    "norm": NORM_KINDS,
    "linear": LINEAR_KINDS,
    "embeddings": ("embed", "pos_embed"),
    "all": KINDS,
}

ALIASES: dict[str, str] = {
    "q_proj": "q",
    "k_proj": "k",
    "v_proj": "v",
    "o_proj": "o",
    "gate_proj": "gate",
    "up_proj": "up",
    "down_proj": "down",
    "embed_tokens": "embed",
    "emb": "embed",
    "lm_head": "head",
    "norms": "norm",
    "layernorm": "norm",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "mlp_norm",
}


def expand_kind(word: str) -> tuple[str, ...] | None:
    """The canonical kinds a word names (a kind, a group or an alias), or None if it names none."""
    word = ALIASES.get(word, word)
    if word in GROUPS:
        return GROUPS[word]
    if word in KINDS:
        return (word,)
    return None
