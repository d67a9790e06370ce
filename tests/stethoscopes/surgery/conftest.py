"""Pairs of tiny random models of one architecture, built once per run: the shared `tiny_model_dir`
model as base, and a donor of the same config with other random weights."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast


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
