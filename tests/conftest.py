"""Session fixtures shared by every test: tiny models built once per run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tiny_models import (  # noqa: F401 - re-exported for tests that import them from conftest
    ARCHITECTURES,
    SHARED_DATA,
    TINY_CONFIGS,
    build_tiny_model,
    perturb_copy,
    write_config,
)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`tiny_model_dir(arch)`: a saved Hugging Face directory of a tiny random model (built once)."""
    cache: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in cache:
            out = tmp_path_factory.mktemp(f"tiny-{arch}")
            build_tiny_model(arch).save_pretrained(out)
            cache[arch] = out
        return cache[arch]

    return make


