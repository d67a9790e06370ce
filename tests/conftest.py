"""Session fixtures shared by every test: tiny models built once per run."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

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


# Pairs of tiny random models of one architecture, built once per run: the shared `tiny_model_dir`
# model as base, and a donor of the same config with other random weights (surgery and experiments).
WORDS = ["<pad>", "<s>", "</s>", "<unk>"] + [f"w{i}" for i in range(60)]


def save_word_tokenizer(directory: Path) -> None:
    """A 64-word tokenizer matching the tiny models' vocabulary, so text generation works offline."""
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(directory)


def random_model_like(directory: Path, seed: int) -> torch.nn.Module:
    """A model with the config of `directory` and fresh random weights from `seed`."""
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(directory)).eval()


@pytest.fixture(scope="session")
def model_pair(
    tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[Path, Path]]:
    """`model_pair(arch)`: (base, donor) directories of two tiny random models of `arch`, with tokenizers."""
    cache: dict[str, tuple[Path, Path]] = {}

    def make(arch: str) -> tuple[Path, Path]:
        if arch not in cache:
            root = tmp_path_factory.mktemp(f"pair-{arch}")
            base, donor = root / "base", root / "donor"
            shutil.copytree(tiny_model_dir(arch), base)
            random_model_like(base, seed=1).save_pretrained(donor)
            for directory in (base, donor):
                save_word_tokenizer(directory)
            cache[arch] = (base, donor)
        return cache[arch]

    return make
