"""Prefix sharing for batched generation: prompts that start with the same tokens (a few-shot block,
a system prompt) have that prefix's KV cache computed once and copied into every batch, as vLLM's
prefix caching does. Few-shot evaluation spends most of its time on the prompt, so this is most of
its cost on a CPU.

The shared tokens are the longest common prefix of the prompts' *token ids* (not of their text: a
tokenizer may merge the characters at a text boundary differently), and each row keeps at least one
token of its own for the first forward step. Rows are laid out as prefix, padding, own tokens; the
attention mask hides the padding and the position ids, counted from the mask, stay consecutive.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any

import torch

# Below this many tokens the copy of the cache and the padding in the middle cost about what they save.
MIN_SHARED_TOKENS = 32


@dataclass
class SharedPrefix:
    """The first `length` tokens every prompt of a call shares, and their KV cache (batch of one)."""

    length: int
    cache: Any
    argument: str  # the name `generate` takes a cache under: `cache`, or `past_key_values` before it

    def for_batch(self, rows: int) -> dict[str, Any]:
        """`generate`'s cache argument for a batch of `rows`: a copy, since generation appends to it."""
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(rows)
        return {self.argument: cache}


def common_prefix_length(encoded: list[list[int]]) -> int:
    """How many leading tokens all prompts share, leaving every prompt at least one of its own."""
    shortest = min(len(ids) for ids in encoded)
    first = encoded[0]
    length = 0
    while length < shortest - 1 and all(ids[length] == first[length] for ids in encoded):
        length += 1
    return length


@torch.inference_mode()
def shared_prefix(model: Any, encoded: list[list[int]]) -> SharedPrefix | None:
    """The prompts' shared prefix with its cache, or None where too short to pay or the model's
    forward takes no cache (then every batch is prefilled whole, as before)."""
    length = common_prefix_length(encoded) if len(encoded) > 1 else 0
    parameters = inspect.signature(model.forward).parameters
    argument = next((name for name in ("cache", "past_key_values") if name in parameters), None)
    if length < MIN_SHARED_TOKENS or argument is None:
        return None
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    prefix = torch.tensor([encoded[0][:length]], device=model.device)
    model(input_ids=prefix, use_cache=True, **{argument: cache})
    return SharedPrefix(length, cache, argument)


def layout(encoded: list[list[int]], pad_id: int, shared: SharedPrefix | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of a batch: left-padded, or with a shared prefix, prefix first and
    each row's own tokens right-aligned after the padding."""
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
    start = shared.length if shared else 0
    for row, ids in enumerate(encoded):
        if start:
            input_ids[row, :start] = torch.tensor(ids[:start])
            attention_mask[row, :start] = 1
        own = ids[start:]
        input_ids[row, width - len(own) :] = torch.tensor(own)
        attention_mask[row, width - len(own) :] = 1
    return input_ids, attention_mask
