"""Alpha merges: selected tensors become W_B + alpha (W_R - W_B), computed in float32 and rounded once,
the same bits on disk, in memory and as engine weight updates; alpha 1 is the plain transplant."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM

from sfn.cli import main
from sfn.errors import SfnError
from sfn.stethoscopes.surgery import merge, merged
from sfn.stethoscopes.surgery.edits import merge_edits


def _formula(base: torch.Tensor, donor: torch.Tensor, alpha: float) -> torch.Tensor:
    base32 = base.to(torch.float32)
    return (base32 + alpha * (donor.to(torch.float32) - base32)).to(base.dtype)


@pytest.fixture(scope="module")
def bf16_pair(model_pair, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bf16-pair")
    pair = []
    for source, name in zip(model_pair("llama"), ("base", "donor")):
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.bfloat16)
        model.save_pretrained(root / name)
        pair.append(root / name)
    return pair[0], pair[1]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("alpha", [0.5, -1.0, 2.0])
def test_alpha_merge_is_the_formula_bit_for_bit(model_pair, bf16_pair, load_tensors, tmp_path, dtype, alpha) -> None:
    base, donor = model_pair("llama") if dtype == "float32" else bf16_pair
    out = merge(base, donor, "o", tmp_path / "out", alpha=alpha).out
    written, base_t, donor_t = load_tensors(out), load_tensors(base), load_tensors(donor)
    blended = [name for name in written if "o_proj" in name]
    assert len(blended) == 4
    for name, tensor in written.items():
        expected = _formula(base_t[name], donor_t[name], alpha) if name in blended else base_t[name]
        assert tensor.dtype == base_t[name].dtype and torch.equal(tensor, expected), name
    assert not torch.equal(written[blended[0]], donor_t[blended[0]])


def test_alpha_one_is_the_transplant_and_zero_the_base(model_pair, load_tensors, tmp_path) -> None:
    base, donor = model_pair("llama")
    plain = load_tensors(merge(base, donor, "o,up", tmp_path / "plain").out)
    one = load_tensors(merge(base, donor, "o,up", tmp_path / "one", alpha=1.0).out)
    zero = load_tensors(merge(base, donor, "o,up", tmp_path / "zero", alpha=0.0).out)
    base_t = load_tensors(base)
    assert all(torch.equal(plain[name], one[name]) for name in plain)
    assert all(torch.equal(zero[name], base_t[name]) for name in zero)


def test_fused_rows_blend_only_the_selected_part(model_pair, load_tensors, tmp_path) -> None:
    base, donor = model_pair("phi3")
    written = load_tensors(merge(base, donor, "q", tmp_path / "out", alpha=0.5).out)
    base_t, donor_t = load_tensors(base), load_tensors(donor)
    name, q = "model.layers.1.self_attn.qkv_proj.weight", 4 * 8
    assert torch.equal(written[name][:q], _formula(base_t[name][:q], donor_t[name][:q], 0.5))
    assert torch.equal(written[name][q:], base_t[name][q:])


def test_in_memory_and_engine_updates_match_the_disk(model_pair, bf16_pair, load_tensors, tmp_path) -> None:
    base, donor = bf16_pair
    on_disk = load_tensors(merge(base, donor, "o,gate", tmp_path / "out", alpha=0.5).out)
    updates = dict(merge_edits(base, donor, "o,gate", alpha=0.5))
    assert updates and all(torch.equal(tensor, on_disk[name]) for name, tensor in updates.items())
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with merged(model, donor, "o,gate", alpha=0.5):
        for name, parameter in model.named_parameters():
            assert torch.equal(parameter, on_disk[name]), name
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())


def test_cli_alpha_and_refusals(model_pair, load_tensors, tmp_path) -> None:
    base, donor = model_pair("llama")
    result = CliRunner().invoke(main, ["merge", str(base), str(donor), "--take", "o", "--alpha", "0.25", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    name = "model.layers.0.self_attn.o_proj.weight"
    expected = _formula(load_tensors(base)[name], load_tensors(donor)[name], 0.25)
    assert torch.equal(load_tensors(tmp_path / "out")[name], expected)
    assert "W_B + 0.25 (W_R - W_B)" in (tmp_path / "out" / "README.md").read_text()
    assert not (tmp_path / "out" / "mergekit_config.yml").exists()  # mergekit's config would take R's values
    for bad in (math.nan, math.inf):
        with pytest.raises(SfnError, match="alpha must be a finite number"):
            merge(base, donor, "o", tmp_path / "bad", alpha=bad)
    assert not (tmp_path / "bad").exists()
