"""Generation with a `transformers` model: batched, left-padded, with the KV cache (via `generate`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from sfn.eval.backends.base import Completion


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """The prompt's token ids, as every backend feeds them to its model (so all see the same tokens)."""
    # Chat templates already start with BOS; adding it again would shift every position.
    bos = tokenizer.bos_token
    add_special = not (bos and prompt.startswith(bos))
    return tokenizer(prompt, add_special_tokens=add_special)["input_ids"]


class HFBackend:
    """Greedy or seeded sampled generation from an in-memory `transformers` causal LM, on its device.

    Prompts are sorted by length before batching (less padding) and answers returned in the
    original order. With `do_sample`, each batch reseeds torch from `seed`, so a run is
    reproducible for the same prompts and batch size.
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
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample else {"do_sample": False}
        self.seed = seed
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, prompt)

    def generate(self, prompts: Sequence[str], max_new_tokens: Sequence[int], stop: Sequence[str] = ()) -> list[Completion]:
        encoded = [self.encode(prompt) for prompt in prompts]
        order = sorted(range(len(prompts)), key=lambda index: -len(encoded[index]))
        results: dict[int, Completion] = {}
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            completions = self._generate_batch([encoded[i] for i in batch], [max_new_tokens[i] for i in batch], stop)
            results.update(zip(batch, completions))
        return [results[index] for index in range(len(prompts))]

    @torch.inference_mode()
    def _generate_batch(self, encoded: list[list[int]], limits: list[int], stop: Sequence[str]) -> list[Completion]:
        width = max(len(ids) for ids in encoded)
        device = self.model.device
        input_ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        criteria = StoppingCriteriaList([_RowLimits(self.tokenizer, width, limits, stop)])
        if self.sampling["do_sample"]:
            torch.manual_seed(self.seed)
        output = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=max(max(limits), 1),
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids,
            stopping_criteria=criteria,
            **self.sampling,
        )
        return [self._completion(row[width:].tolist(), limit, stop) for row, limit in zip(output.cpu(), limits)]

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
