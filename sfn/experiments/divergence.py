"""Teacher-forced divergence: how far a variant's next-token distributions on a probe's answer tokens
lie from B's and R's, one forward pass per variant instead of generation.

The lower layers of a variant edited from layer L up compute what the unedited model computes, so
their output (the input of layer L) is captured once per probe batch and each such variant's pass
starts at layer L (`PrefixCache`). The first use checks that a pass started at a layer gives the same
bits as a whole pass; where it does not (an architecture whose layers depend on their position in
the list), passes run whole and the map says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from sfn.experiments.probes import Probe

KL_ROWS = 64  # tokens per step of token_kl
MAX_PADDING = 0.1  # a batch takes no sequence shorter than this share below its longest one


@dataclass
class ProbeBatch:
    input_ids: torch.Tensor  # [rows, length], right-padded
    attention_mask: torch.Tensor
    rows: torch.Tensor  # per answer token: its row in the batch
    positions: torch.Tensor  # per answer token: the position whose logits predict it
    sequence: np.ndarray  # per answer token: its sequence's index in the probe


def probe_batches(probe: Probe, pad_id: int, batch_tokens: int = 4096) -> list[ProbeBatch]:
    """The probe's sequences in batches of about `batch_tokens` positions, longest first; a batch ends
    where the next sequence is more than `MAX_PADDING` shorter than its first, so padding stays under
    a tenth of the positions (on GSM8K solutions a plain cap of 4096 positions padded 38% of them, and
    every layer computes padding as it computes tokens)."""
    order = sorted(range(len(probe.sequences)), key=lambda i: -_length(probe, i))
    batches, current = [], []
    for index in order:
        length = _length(probe, index)
        if current and ((len(current) + 1) * _length(probe, current[0]) > batch_tokens
                        or length < (1 - MAX_PADDING) * _length(probe, current[0])):
            batches.append(_batch(probe, current, pad_id))
            current = []
        current.append(index)
    if current:
        batches.append(_batch(probe, current, pad_id))
    return batches


def _length(probe: Probe, index: int) -> int:
    return len(probe.sequences[index].prompt_ids) + len(probe.sequences[index].text_ids)


def _batch(probe: Probe, indices: list[int], pad_id: int) -> ProbeBatch:
    width = max(_length(probe, i) for i in indices)
    input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    rows, positions, sequence = [], [], []
    for row, index in enumerate(indices):
        seq = probe.sequences[index]
        ids = seq.prompt_ids + seq.text_ids
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        start = len(seq.prompt_ids) - 1  # the logits at position p predict token p + 1
        rows += [row] * len(seq.text_ids)
        positions += range(start, start + len(seq.text_ids))
        sequence += [index] * len(seq.text_ids)
    return ProbeBatch(input_ids, mask, torch.tensor(rows), torch.tensor(positions), np.array(sequence))


def answer_log_probs(model: torch.nn.Module, batch: ProbeBatch) -> torch.Tensor:
    """float32 log-probabilities [answer tokens, vocabulary] of `model` on the batch's answer tokens.

    The head runs only on the hidden states that predict answer tokens: a hook on the output embeddings
    gathers those rows before the head (the model still applies its own logit scaling or soft-capping
    after it). Every other position of every row of the batch, padding and prompts included, never
    reaches the head: on a probe of GSM8K solutions that is about half of the head's work and memory."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    gathered = []

    def gather(module, args):
        hidden = args[0]
        if hidden.dim() != 3 or tuple(hidden.shape[:2]) != tuple(batch.input_ids.shape):
            return None  # not the per-position hidden states: the head runs as the model calls it
        gathered.append(True)
        return (hidden[batch.rows, batch.positions].unsqueeze(0), *args[1:])

    handle = head.register_forward_pre_hook(gather) if head is not None else None
    try:
        with torch.no_grad():
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    finally:
        if handle is not None:
            handle.remove()
    picked = logits[0] if gathered else logits[batch.rows, batch.positions]
    return torch.log_softmax(picked.to(torch.float32), dim=-1)


def token_kl(reference: torch.Tensor, variant: torch.Tensor) -> torch.Tensor:
    """KL(reference || variant) per token, from log-probabilities; exactly 0 where they are equal.

    `KL_ROWS` tokens at a time: each row's sum is the same, bit for bit, and the temporaries stay in the
    cache instead of three fresh arrays the size of [tokens, vocabulary] (400 MB for 2,048 tokens of a
    49k vocabulary) per call."""
    kl = torch.empty(reference.shape[0], dtype=reference.dtype)
    for start in range(0, reference.shape[0], KL_ROWS):
        rows = slice(start, start + KL_ROWS)
        kl[rows] = (reference[rows].exp() * (reference[rows] - variant[rows])).sum(-1)
    return kl.clamp_min(0.0)


def token_mean(per_token: np.ndarray, sequence: np.ndarray) -> float:
    """The mean over tokens, summed per sequence first: the one formula every score and gap uses, so that
    equal per-token values give equal means, bit for bit."""
    _, inverse = np.unique(sequence, return_inverse=True)
    sums = np.bincount(inverse, weights=per_token.astype(np.float64))
    return float(sums.sum() / len(per_token))


def bootstrap_mean(per_token: np.ndarray, sequence: np.ndarray, *, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The 95% interval (low, high) of the mean over tokens, resampling whole sequences with their tokens."""
    ids, inverse = np.unique(sequence, return_inverse=True)
    sums = np.bincount(inverse, weights=per_token.astype(np.float64), minlength=len(ids))
    counts = np.bincount(inverse, minlength=len(ids)).astype(float)
    if len(ids) < 2:
        mean = float(sums.sum() / counts.sum())
        return mean, mean
    draws = np.random.default_rng(seed).integers(0, len(ids), size=(resamples, len(ids)))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


class PrefixCache:
    """The input of chosen layers of one unedited model on each batch, to start later passes there."""

    def __init__(self, model: torch.nn.Module, layers: torch.nn.ModuleList, holder: torch.nn.Module, attribute: str,
                 batches: Sequence[ProbeBatch], starts: Sequence[int]):
        self.model, self.layers, self.holder, self.attribute = model, layers, holder, attribute
        self.batches = batches
        self.starts = sorted({s for s in starts if 0 < s < len(layers)})
        self.inputs: list[dict[int, torch.Tensor]] = [self._capture(batch) for batch in batches]
        self.exact = self._check()

    def _capture(self, batch: ProbeBatch) -> dict[int, torch.Tensor]:
        captured: dict[int, torch.Tensor] = {}
        handles = []
        for start in self.starts:
            def keep(module, args, kwargs, start=start):
                captured[start] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
            handles.append(self.layers[start].register_forward_pre_hook(keep, with_kwargs=True))
        try:
            with torch.no_grad():
                self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        return captured

    def _check(self) -> bool:
        """Whether a pass started at a captured layer gives the whole pass's bits (on the first batch)."""
        if not self.starts:
            return False
        whole = answer_log_probs(self.model, self.batches[0])
        started = self.log_probs(0, self.starts[len(self.starts) // 2])
        return torch.equal(whole, started)

    def log_probs(self, batch_index: int, start: int) -> torch.Tensor:
        with self._from_layer(start, self.inputs[batch_index][start]):
            return answer_log_probs(self.model, self.batches[batch_index])

    @contextmanager
    def _from_layer(self, start: int, hidden: torch.Tensor) -> Iterator[None]:
        """Run only layers[start:], feeding the first of them the captured `hidden` (the embeddings,
        still computed, are replaced)."""
        def replace(module, args, kwargs):
            fresh = hidden.clone()  # a layer that edits its input in place must not change the cache
            if args:
                return (fresh, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": fresh}

        kept = torch.nn.ModuleList(list(self.layers)[start:])
        handle = kept[0].register_forward_pre_hook(replace, with_kwargs=True)
        setattr(self.holder, self.attribute, kept)
        try:
            yield
        finally:
            setattr(self.holder, self.attribute, self.layers)
            handle.remove()
