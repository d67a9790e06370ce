"""Module plugins: extract, apply on disk (same bits as a merge), attach and switch at run time."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM

from sfn.errors import SfnError, SfnErrors
from sfn.stethoscopes.surgery import PluggableModel, apply_plugin, extract_plugin, merge, read_plugin
from sfn.stethoscopes.surgery.cli import plugin_group


@pytest.mark.parametrize("arch", ["qwen2", "phi3", "gpt2"])
def test_apply_equals_merge(model_pair, load_tensors, generates, tmp_path: Path, arch: str) -> None:
    base, tuned = model_pair(arch)
    plugin = extract_plugin(base, tuned, "o,q,norm", tmp_path / "p.safetensors")
    assert plugin.metadata["selector"] == "o,q,norm" and plugin.metadata["model_type"] == arch
    assert len(plugin.metadata["base"]["parts_sha256"]) == 64 and plugin.metadata["base"]["files"]
    assert (tmp_path / "p.safetensors").stat().st_size < sum(f.stat().st_size for f in base.glob("*.safetensors")) / 2
    applied = load_tensors(apply_plugin(base, tmp_path / "p.safetensors", tmp_path / "applied"))
    merged = load_tensors(merge(base, tuned, "o,q,norm", tmp_path / "merged").out)
    assert applied.keys() == merged.keys()
    for name, tensor in applied.items():
        assert torch.equal(tensor, merged[name]), name
    generates(tmp_path / "applied")


@pytest.mark.parametrize("arch", ["llama", "phi3"])
def test_plugin_edits_are_exactly_the_tensors_apply_changes(model_pair, load_tensors, tmp_path: Path, arch: str) -> None:
    # What an engine loads for a plugin (phi3: q is rows of the fused qkv tensor) = what apply_plugin writes.
    from sfn.stethoscopes.surgery import plugin_edits

    base, tuned = model_pair(arch)
    extract_plugin(base, tuned, "o,q", tmp_path / "p.safetensors")
    applied = load_tensors(apply_plugin(base, tmp_path / "p.safetensors", tmp_path / "applied"))
    original = load_tensors(base)
    edits = dict(plugin_edits(base, tmp_path / "p.safetensors"))
    assert set(edits) == {name for name in original if not torch.equal(original[name], applied[name])} and edits
    for name, tensor in edits.items():
        assert torch.equal(tensor, applied[name]), name
    with pytest.raises(SfnErrors, match="was made for base"):
        dict(plugin_edits(tuned, tmp_path / "p.safetensors"))


def test_foreign_base_refused_unless_forced(model_pair, tmp_path: Path) -> None:
    base, tuned = model_pair("llama")
    extract_plugin(base, tuned, "o", tmp_path / "p.safetensors")
    with pytest.raises(SfnErrors, match="was made for base"):
        apply_plugin(tuned, tmp_path / "p.safetensors", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    apply_plugin(tuned, tmp_path / "p.safetensors", tmp_path / "out", force=True)
    other_arch, _ = model_pair("qwen2")
    with pytest.raises(SfnErrors, match="is for architecture 'llama'"):
        apply_plugin(other_arch, tmp_path / "p.safetensors", tmp_path / "x", force=True)
    with pytest.raises(SfnError, match="exists"):
        extract_plugin(base, tuned, "o", tmp_path / "p.safetensors")
    with pytest.raises(SfnError, match="not an sfn plugin"):
        read_plugin(base / "model.safetensors")


def test_pluggable_switches_exactly(model_pair, tmp_path: Path) -> None:
    base, tuned = model_pair("phi3")
    extract_plugin(base, tuned, "o,norm", tmp_path / "a.safetensors")
    extract_plugin(base, tuned, "k,up@1-2", tmp_path / "b.safetensors")  # fused parts only
    expected_a = AutoModelForCausalLM.from_pretrained(merge(base, tuned, "o,norm", tmp_path / "ma").out).state_dict()
    expected_b = AutoModelForCausalLM.from_pretrained(merge(base, tuned, "k,up@1-2", tmp_path / "mb").out).state_dict()
    model = PluggableModel(base)
    original = {name: t.clone() for name, t in model.model.state_dict().items()}
    model.add("a", tmp_path / "a.safetensors")
    model.add("b", tmp_path / "b.safetensors")
    assert model.plugins == ["a", "b"] and model.active is None
    for name, expected in (("a", expected_a), ("b", expected_b), ("a", expected_a), (None, original)):
        model.use(name)
        for key, tensor in model.model.state_dict().items():
            assert torch.equal(tensor, expected[key]), (name, key)
    model.use("b")
    output = model.generate(torch.tensor([[1, 5, 6]]), max_new_tokens=3, do_sample=False)
    assert output.shape == (1, 6)
    model.remove("b")
    assert model.active is None and torch.equal(model.model.state_dict()["model.norm.weight"], original["model.norm.weight"])
    with pytest.raises(SfnError, match="no plugin named"):
        model.use("b")


def test_plugin_cli(model_pair, tmp_path: Path) -> None:
    base, tuned = model_pair("llama")
    runner = CliRunner()
    extracted = runner.invoke(plugin_group, ["extract", str(base), str(tuned), "--out", str(tmp_path / "p.safetensors")])
    assert extracted.exit_code == 0, extracted.output
    applied = runner.invoke(plugin_group, ["apply", str(tuned), str(tmp_path / "p.safetensors"), "--out", str(tmp_path / "o")])
    assert applied.exit_code == 2 and "--force" in applied.output


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_plugin_file_mode_follows_the_umask(model_pair, tmp_path: Path, umask: int) -> None:
    """safetensors writes through a 0600 temporary file; a plugin gets the mode any new file would."""
    import os

    base, tuned = model_pair("llama")
    previous = os.umask(umask)
    try:
        path = extract_plugin(base, tuned, "o", tmp_path / "p.safetensors").path
        applied = apply_plugin(base, path, tmp_path / "applied")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert Path(applied).stat().st_mode & 0o777 == 0o777 & ~umask
    for shard in Path(applied).glob("*.safetensors"):
        assert shard.stat().st_mode & 0o777 == 0o666 & ~umask, shard
