"""The divergence kernel on every registry architecture: the head at answer positions only gives the
whole pass's bits, and a pass started at a middle layer from cached activations does too."""

from __future__ import annotations

import pytest
import torch

from sfn.experiments.divergence import PrefixCache, ProbeBatch, answer_log_probs
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
