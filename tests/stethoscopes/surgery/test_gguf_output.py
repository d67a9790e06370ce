"""A merge or destruction of a GGUF model writes the GGUF's tokenizer as ordinary files beside the weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sfn.stethoscopes.surgery import destroy, merge
from tiny_gguf import SPECS, write_tiny_gguf

TEXT = "<t3><t5><t7>"


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = write_tiny_gguf(tmp_path_factory.mktemp("base") / "base.gguf", SPECS["llama-untied"], seed=0)
    tuned = write_tiny_gguf(tmp_path_factory.mktemp("tuned") / "tuned.gguf", SPECS["llama-untied"], seed=1)
    return base, tuned


def _same_tokenizer(out: Path, gguf: Path) -> None:
    written = AutoTokenizer.from_pretrained(out)
    original = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    assert written(TEXT)["input_ids"] == original(TEXT)["input_ids"]
    assert len(written) == len(original)


def test_destroyed_gguf_loads_with_its_tokenizer(ggufs, tmp_path: Path) -> None:
    base, _ = ggufs
    out = destroy(base, "o", tmp_path / "out", method="zero").out
    assert (out / "tokenizer_config.json").is_file()
    _same_tokenizer(out, base)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert torch.count_nonzero(model.model.layers[0].self_attn.o_proj.weight) == 0


@pytest.mark.slow
def test_merged_gguf_takes_the_tokenizer_it_is_told_to(ggufs, tmp_path: Path) -> None:
    base, tuned = ggufs
    _same_tokenizer(merge(base, tuned, "o", tmp_path / "from-base").out, base)
    _same_tokenizer(merge(base, tuned, "o", tmp_path / "from-donor", tokenizer_from="donor").out, tuned)
