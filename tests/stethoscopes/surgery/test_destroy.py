"""`destroy` on disk: zero and reinit touch exactly the selected parts; remove drops and renumbers layers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sfn.errors import SfnErrors
from sfn.stethoscopes.surgery import destroy
from sfn.stethoscopes.surgery.cli import destroy_command


@pytest.mark.parametrize("arch", ["llama", "phi3", "gpt2"])
def test_zero_touches_only_selection(model_pair, load_tensors, generates, tmp_path: Path, arch: str) -> None:
    base, _ = model_pair(arch)
    result = destroy(base, "o@1-2", tmp_path / "out", method="zero")
    out, original = load_tensors(result.out), load_tensors(base)
    changed = set(result.changes["tensor"])
    assert len(changed) >= 2 and all(".1." in n or ".2." in n for n in changed)
    for name, tensor in out.items():
        if name in changed:
            assert not tensor.any(), name
        else:
            assert torch.equal(tensor, original[name]), name
    generates(result.out)


def test_zero_fused_part_only(model_pair, load_tensors, tmp_path: Path) -> None:
    base, _ = model_pair("phi3")
    out = load_tensors(destroy(base, "k@0", tmp_path / "out", method="zero").out)
    original = load_tensors(base)
    name = "model.layers.0.self_attn.qkv_proj.weight"
    assert not out[name][32:48].any()
    assert torch.equal(out[name][:32], original[name][:32]) and torch.equal(out[name][48:], original[name][48:])


def test_reinit_reproducible_bit_for_bit(model_pair, load_tensors, tmp_path: Path) -> None:
    base, _ = model_pair("qwen2")
    first = load_tensors(destroy(base, "mlp@0-1", tmp_path / "a", method="reinit", std=0.05, seed=7).out)
    again = load_tensors(destroy(base, "mlp@0-1", tmp_path / "b", method="reinit", std=0.05, seed=7).out)
    other = load_tensors(destroy(base, "mlp@0-1", tmp_path / "c", method="reinit", std=0.05, seed=8).out)
    name = "model.layers.1.mlp.down_proj.weight"
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert not torch.equal(first[name], other[name])
    assert abs(first[name].std().item() - 0.05) < 0.01 and abs(first[name].mean().item()) < 0.01
    assert torch.equal(first["model.layers.2.mlp.down_proj.weight"], load_tensors(base)["model.layers.2.mlp.down_proj.weight"])


@pytest.mark.parametrize("arch", ["qwen2", "gemma3", "gpt2", "gpt_neox", "phi3"])
@pytest.mark.parametrize("layers", ["0", "1-2", "3"])
def test_remove_layers_renumbers_and_loads(model_pair, load_tensors, generates, tmp_path: Path, arch: str, layers: str) -> None:
    base, _ = model_pair(arch)
    config = json.loads((base / "config.json").read_text())
    if arch == "gemma3":
        # Distinct per-layer entries show that the kept layers keep their own.
        config["layer_types"] = ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]
        (tmp_path / "base").mkdir()
        for f in base.iterdir():
            (tmp_path / "base" / f.name).write_bytes(f.read_bytes())
        (tmp_path / "base" / "config.json").write_text(json.dumps(config))
        base = tmp_path / "base"
    removed = [int(x) for x in layers.split("-")]
    removed = list(range(removed[0], removed[-1] + 1))
    kept = [i for i in range(4) if i not in removed]
    result = destroy(base, f"all@{layers}", tmp_path / "out", method="remove")
    out, original = load_tensors(result.out), load_tensors(base)
    new_config = json.loads((result.out / "config.json").read_text())
    assert new_config.get("num_hidden_layers", new_config.get("n_layer")) == len(kept)
    if arch == "gemma3":
        assert new_config["layer_types"] == [config["layer_types"][i] for i in kept]
    layer_word = "h" if arch == "gpt2" else "layers"
    for new, old in enumerate(kept):
        for name, tensor in original.items():
            if f".{layer_word}.{old}." in name:
                assert torch.equal(out[name.replace(f".{layer_word}.{old}.", f".{layer_word}.{new}.")], tensor), name
    assert not any(f".{layer_word}.{len(kept)}." in name for name in out)
    assert len(out) == len(original) - len(removed) * sum(f".{layer_word}.0." in n for n in original)
    generates(result.out)


def test_destroy_refusals(model_pair, tmp_path: Path) -> None:
    base, _ = model_pair("gpt2")
    with pytest.raises(SfnErrors, match="would remove all 4 layers"):
        destroy(base, "all@0-3", tmp_path / "out", method="remove")
    with pytest.raises(SfnErrors, match="selects none"):
        destroy(base, "embed,head", tmp_path / "out", method="remove")
    with pytest.raises(SfnErrors, match="ties its input embedding"):
        destroy(base, "embed", tmp_path / "out", method="zero")
    with pytest.raises(SfnErrors) as caught:
        destroy(base, "gate", tmp_path / "out", method="melt")
    assert len(caught.value.problems) == 2
    assert not (tmp_path / "out").exists()


def test_destroy_cli(model_pair, load_tensors, tmp_path: Path) -> None:
    base, _ = model_pair("llama")
    runner = CliRunner()
    ok = runner.invoke(destroy_command, [str(base), "--select", "v@2", "--method", "reinit", "--seed", "3", "--out", str(tmp_path / "o")])
    assert ok.exit_code == 0, ok.output
    assert not load_tensors(tmp_path / "o")["model.layers.2.self_attn.v_proj.weight"].equal(load_tensors(base)["model.layers.2.self_attn.v_proj.weight"])
    missing = runner.invoke(destroy_command, [str(base), "--method", "zero"])
    assert missing.exit_code == 2 and "error: destroy needs --select and --out" in missing.output
