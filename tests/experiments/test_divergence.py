"""The divergence kernel on every registry architecture: the head at answer positions only gives the
whole pass's bits, and a pass started at a middle layer from cached activations does too; batches pad
little, and the KL taken a few tokens at a time is the whole formula's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sfn.experiments.divergence import KL_ROWS, MAX_PADDING, PrefixCache, ProbeBatch, answer_log_probs, probe_batches, token_kl
from sfn.experiments.probes import Probe, ProbeSequence
from sfn.stethoscopes.surgery.inmemory import decoder_layers
from tiny_models import ARCHITECTURES, build_tiny_model


def _batch() -> ProbeBatch:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 60, (2, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # right padding
    return ProbeBatch(ids, mask, torch.tensor([0, 0, 0, 1, 1]), torch.tensor([5, 6, 7, 3, 4]), None)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_answer_positions_and_prefix_passes_are_bit_exact(arch: str) -> None:
    model = build_tiny_model(arch, seed=0).eval()
    batch = _batch()
    whole = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    assert torch.equal(answer_log_probs(model, batch), torch.log_softmax(whole[batch.rows, batch.positions].float(), -1))
    num_layers = model.config.get_text_config().num_hidden_layers
    holder, attribute, layers = decoder_layers(model, num_layers)
    cache = PrefixCache(model, layers, holder, attribute, [batch], [1, num_layers - 1])
    assert cache.exact
    assert torch.equal(cache.log_probs(0, num_layers - 1), answer_log_probs(model, batch))
    assert getattr(holder, attribute) is layers  # the module list is put back


def test_batches_pad_under_a_tenth_and_hold_every_answer_token() -> None:
    lengths = [400 - 9 * i for i in range(40)]  # 400 down to 49: one plain 4096-position cap pads about half
    probe = Probe("p", [ProbeSequence([5] * (n // 2), [7] * (n - n // 2)) for n in lengths], "test")
    batches = probe_batches(probe, 0, 4096)
    positions = sum(b.input_ids.numel() for b in batches)
    assert 1 - sum(lengths) / positions < MAX_PADDING and all(b.input_ids.numel() <= 4096 for b in batches)
    assert sorted(np.concatenate([b.sequence for b in batches]).tolist()) == sorted(i for i, n in enumerate(lengths) for _ in range(n - n // 2))
    for b in batches:
        assert (b.input_ids[b.rows, b.positions + 1] == 7).all()  # each position predicts an answer token


def test_kl_by_chunks_is_the_whole_formula_bit_for_bit() -> None:
    generator = torch.Generator().manual_seed(0)
    reference = torch.log_softmax(torch.randn(3 * KL_ROWS + 5, 300, generator=generator), -1)
    variant = torch.log_softmax(torch.randn(3 * KL_ROWS + 5, 300, generator=generator), -1)
    assert torch.equal(token_kl(reference, variant), (reference.exp() * (reference - variant)).sum(-1).clamp_min(0.0))
    assert torch.equal(token_kl(reference, reference), torch.zeros(len(reference)))
