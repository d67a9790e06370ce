"""Generation with a `transformers` model: batched, left-padded, with the KV cache (via `generate`),
and the prompts' shared prefix prefilled once (`shared_prefix.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from sfn.eval.backends.base import Completion
from sfn.eval.backends.shared_prefix import SharedPrefix, layout, shared_prefix


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """The prompt's token ids, as every backend feeds them to its model (so all see the same tokens)."""
    # Chat templates already start with BOS; adding it again would shift every position.
    bos = tokenizer.bos_token
    add_special = not (bos and prompt.startswith(bos))
    return tokenizer(prompt, add_special_tokens=add_special)["input_ids"]


class HFBackend:
    """Greedy or seeded sampled generation from an in-memory `transformers` causal LM, on its device.

    Prompts are sorted by length before batching (less padding) and answers returned in the
    original order. With `do_sample`, every prompt draws its tokens from its own generator, seeded
    from `seeds` (one per prompt) or else from `seed` and its position: a prompt's sample does not
    depend on the batch size or on which prompts share its batch. With `share_prefix`, the tokens
    all prompts of a call start with (a few-shot block) are run through the model once, not once per
    batch; `share_prefix=False` prefills every prompt whole.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int = 8,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        share_prefix: bool = True,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.do_sample = do_sample
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.share_prefix = share_prefix
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, prompt)

    @property
    def context_length(self) -> int | None:
        """The model's trained context (`max_position_embeddings` or its older names), if it says."""
        config = getattr(self.model, "config", None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, name, None)
            if isinstance(value, int):
                return value
        return None

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: Sequence[int],
        stop: Sequence[str] = (),
        *,
        min_new_tokens: int = 0,
        seeds: Sequence[int] | None = None,
    ) -> list[Completion]:
        """`min_new_tokens`: the first tokens may be neither end of sequence nor a one-token stop
        string (vLLM's `min_tokens` with stop token ids, as s1 uses it)."""
        encoded = [self.encode(prompt) for prompt in prompts]
        if seeds is None:
            seeds = [self.seed * 1_000_003 + index for index in range(len(prompts))]
        order = sorted(range(len(prompts)), key=lambda index: -len(encoded[index]))
        shared = shared_prefix(self.model, encoded) if self.share_prefix else None
        results: dict[int, Completion] = {}
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            completions = self._generate_batch([encoded[i] for i in batch], [max_new_tokens[i] for i in batch], stop,
                                               min_new_tokens, [seeds[i] for i in batch], shared)
            results.update(zip(batch, completions))
        return [results[index] for index in range(len(prompts))]

    @torch.inference_mode()
    def _generate_batch(self, encoded: list[list[int]], limits: list[int], stop: Sequence[str], minimum: int,
                        seeds: list[int], shared: SharedPrefix | None) -> list[Completion]:
        device = self.model.device
        input_ids, attention_mask = layout(encoded, self.pad_id, shared)
        width = input_ids.shape[1]
        criteria = StoppingCriteriaList([_RowLimits(self.tokenizer, width, limits, stop)])
        processors = []
        if minimum:
            processors.append(_NoEarlyStop(width, minimum, self.eos_ids + self._single_token_ids(stop)))
        if self.do_sample:
            # Sampling happens in this processor, from per-row generators; generate's own greedy step
            # then picks the one token it leaves. torch's global generator is never touched.
            processors.append(_RowSampler(self.temperature, self.top_p, seeds, device))
        output = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=max(max(limits), 1),
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids,
            stopping_criteria=criteria,
            logits_processor=LogitsProcessorList(processors),
            do_sample=False,
            # The model's generation_config may ask for sampling knobs greedy decoding ignores.
            temperature=None,
            top_p=None,
            top_k=None,
            **(shared.for_batch(len(encoded)) if shared else {}),
        )
        return [self._completion(row[width:].tolist(), limit, stop) for row, limit in zip(output.cpu(), limits)]

    def _single_token_ids(self, stop: Sequence[str]) -> list[int]:
        ids = [self.tokenizer(marker, add_special_tokens=False)["input_ids"] for marker in stop]
        return [token[0] for token in ids if len(token) == 1]

    def _completion(self, new_ids: list[int], limit: int, stop: Sequence[str]) -> Completion:
        ends = [position for position, token in enumerate(new_ids) if token in self.eos_ids or token == self.pad_id]
        end = ends[0] if ends else len(new_ids)
        ended_by_eos = bool(ends) and new_ids[end] in self.eos_ids
        kept = new_ids[: min(end, limit)]
        text = self.tokenizer.decode(kept, skip_special_tokens=False)
        hits = [text.find(marker) for marker in stop if marker in text]
        if hits:
            return Completion(text[: min(hits)], len(kept), "stop")
        if ended_by_eos and end < limit:
            return Completion(text, len(kept) + 1, "eos")
        return Completion(text, len(kept), "length")


class _NoEarlyStop(LogitsProcessor):
    """Forbids the given tokens until each row has generated `minimum` tokens."""

    def __init__(self, prompt_width: int, minimum: int, banned: list[int]):
        self.prompt_width = prompt_width
        self.minimum = minimum
        self.banned = sorted(set(banned))

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] - self.prompt_width < self.minimum:
            scores = scores.clone()
            scores[:, self.banned] = -float("inf")
        return scores


class _RowSampler(LogitsProcessor):
    """Draws each row's next token with temperature and nucleus (top-p) sampling from that row's
    own seeded generator, and leaves only that token possible."""

    def __init__(self, temperature: float, top_p: float, seeds: list[int], device: Any):
        self.temperature = temperature
        self.top_p = top_p
        kind = torch.device(device).type
        self.generators = [torch.Generator(device=kind).manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probabilities = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1:
            ordered, indices = probabilities.sort(dim=-1, descending=True)
            # Keep the smallest set of most likely tokens whose mass reaches top_p.
            outside = ordered.cumsum(dim=-1) - ordered >= self.top_p
            ordered = ordered.masked_fill(outside, 0.0)
            probabilities = torch.zeros_like(probabilities).scatter(-1, indices, ordered)
        chosen = torch.stack([torch.multinomial(row, 1, generator=generator)[0]
                              for row, generator in zip(probabilities, self.generators)])
        forced = torch.full_like(scores, -float("inf"))
        return forced.scatter(-1, chosen[:, None], 0.0)


class _RowLimits(StoppingCriteria):
    """Stops each row at its own token limit or when it has generated one of the stop strings."""

    def __init__(self, tokenizer: Any, prompt_width: int, limits: list[int], stop: Sequence[str]):
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width
        self.limits = torch.tensor(limits)
        self.stop = list(stop)
        # Every token decodes to at least one character, so this many tokens hold any stop string.
        self.window = max((len(marker) for marker in self.stop), default=0) + 1

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        generated = input_ids.shape[1] - self.prompt_width
        done = (generated >= self.limits).to(input_ids.device)
        if self.stop and generated > 0:
            tails = input_ids[:, max(self.prompt_width, input_ids.shape[1] - self.window) :]
            texts = self.tokenizer.batch_decode(tails, skip_special_tokens=False)
            hit = torch.tensor([any(marker in text for marker in self.stop) for text in texts], device=input_ids.device)
            done = done | hit
        return done


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    ids = [token for token in ids if token is not None]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the model and tokenizer define no end-of-sequence token; set tokenizer.eos_token")
    return ids
