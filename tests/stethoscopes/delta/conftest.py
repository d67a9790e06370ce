"""Base/tuned pairs with known changes, built once per test run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tiny_models import perturb_copy


@pytest.fixture(scope="session")
def tuned_dir(tiny_model_dir, tmp_path_factory) -> Callable[[str, str, Callable], Path]:
    """`tuned_dir(arch, label, perturb)`: a perturbed copy of the tiny `arch` model, cached by label."""
    cache: dict[tuple[str, str], Path] = {}

    def make(arch: str, label: str, perturb: Callable[[str, torch.Tensor], torch.Tensor | None]) -> Path:
        if (arch, label) not in cache:
            cache[(arch, label)] = perturb_copy(tiny_model_dir(arch), tmp_path_factory.mktemp(f"{arch}-{label}"), perturb)
        return cache[(arch, label)]

    return make
