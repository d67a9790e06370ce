"""Tiny models loaded back with transformers, once per test run, for checks against the modelling code."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from transformers import AutoModelForCausalLM, PreTrainedModel


@pytest.fixture(scope="session")
def loaded_model(tiny_model_dir) -> Callable[[str], PreTrainedModel]:
    """`loaded_model(arch)`: the saved tiny model of `arch` loaded with `from_pretrained` (float32, eval).

    Shared: tests must not change its weights; settings they change (attention implementation,
    hooks) they restore.
    """
    cache: dict[str, PreTrainedModel] = {}

    def load(arch: str) -> PreTrainedModel:
        if arch not in cache:
            cache[arch] = AutoModelForCausalLM.from_pretrained(tiny_model_dir(arch), dtype=torch.float32).eval()
        return cache[arch]

    return load
