"""Helpers of the surgery tests: reading every tensor of a written model, loading it and generating."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def _load_tensors(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a model directory (sharded or not)."""
    index = directory / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        tensors.update(load_file(directory / name))
    return tensors


def _generates(directory: Path) -> torch.Tensor:
    """Load a model directory with transformers and greedily generate a few tokens."""
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    output = model.generate(torch.tensor([[1, 5, 6, 7]]), max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert output.shape == (1, 8)
    return output


@pytest.fixture(scope="session")
def load_tensors() -> Callable[[Path], dict[str, torch.Tensor]]:
    """`load_tensors(directory)`: every tensor of a model directory (sharded or not)."""
    return _load_tensors


@pytest.fixture(scope="session")
def generates() -> Callable[[Path], torch.Tensor]:
    """`generates(directory)`: load the directory with transformers and greedily generate 4 tokens."""
    return _generates
