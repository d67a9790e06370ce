"""`merged` and `destroyed` on a loaded model: same result as on disk, exact restore afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from sfn.errors import SfnErrors
from sfn.stethoscopes.surgery import destroy, destroyed, merge, merged

PROMPT = torch.tensor([[1, 5, 6, 7]])


def _load(directory: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(directory).eval()


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def _assert_same(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert state.keys() == expected.keys()
    for name, tensor in state.items():
        assert torch.equal(tensor, expected[name]), name


def _generate(model: torch.nn.Module) -> torch.Tensor:
    return model.generate(PROMPT, max_new_tokens=6, do_sample=False, pad_token_id=0)


@pytest.mark.parametrize("arch", ["llama", "phi3", "gpt2", "gpt_neox"])
@pytest.mark.parametrize("donor_kind", ["path", "model"])
def test_merged_matches_disk_and_restores(model_pair, tmp_path: Path, arch: str, donor_kind: str) -> None:
    base, donor = model_pair(arch)
    model = _load(base)
    original = _snapshot(model)
    on_disk = _load(merge(base, donor, "q,o@1-3", tmp_path / "out").out)
    donor_source = donor if donor_kind == "path" else _load(donor)
    with merged(model, donor_source, "q,o@1-3") as edited:
        assert edited is model
        _assert_same(model, on_disk.state_dict())
    _assert_same(model, original)
    edit = merged(model, donor_source, "q,o@1-3")
    assert edit.active and edit.edited
    edit.restore()
    edit.restore()
    _assert_same(model, original)


@pytest.mark.parametrize("method", ["zero", "reinit"])
def test_destroyed_matches_disk_and_restores(model_pair, load_tensors, tmp_path: Path, method: str) -> None:
    base, _ = model_pair("phi3")
    model = _load(base)
    original = _snapshot(model)
    on_disk = load_tensors(destroy(base, "k,up,norm@1-2", tmp_path / "out", method=method, seed=5).out)
    with destroyed(model, "k,up,norm@1-2", method, seed=5):
        _assert_same(model, on_disk)
    _assert_same(model, original)


@pytest.mark.parametrize("arch", ["qwen2", "gemma3", "gpt2"])
@pytest.mark.parametrize("layers", ["0", "1-2", "3"])
def test_destroyed_remove_generates_like_disk(model_pair, tmp_path: Path, arch: str, layers: str) -> None:
    base, _ = model_pair(arch)
    model = _load(base)
    original, before = _snapshot(model), _generate(model)
    on_disk = _generate(_load(destroy(base, f"all@{layers}", tmp_path / "out", method="remove").out))
    with destroyed(model, f"all@{layers}", "remove"):
        assert torch.equal(_generate(model), on_disk)
        assert model.config.num_hidden_layers < 4
    assert model.config.num_hidden_layers == 4
    _assert_same(model, original)
    assert torch.equal(_generate(model), before)


def test_failed_edit_changes_nothing(model_pair) -> None:
    base, donor = model_pair("gpt2")
    model = _load(base)
    original = _snapshot(model)
    with pytest.raises(SfnErrors, match="ties its input embedding"):
        merged(model, donor, "head")
    with pytest.raises(SfnErrors, match="matches no tensor"):
        destroyed(model, "gate", "zero")
    _assert_same(model, original)
