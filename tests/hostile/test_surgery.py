"""Surgery refuses a base that lacks a module its architecture has, and a donor of another depth."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from hostile.hostile_inputs import tree_digest
from sfn.errors import SfnError
from sfn.stethoscopes.surgery import apply_plugin, destroy, extract_plugin, merge
from tiny_models import TINY_CONFIGS, build_tiny_model

DROPPED = "model.layers.1.mlp.down_proj.weight"


def _drop(directory: Path, name: str) -> None:
    tensors = load_file(directory / "model.safetensors")
    del tensors[name]
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})


def test_merge_refuses_a_base_missing_a_tensor(own_pair, tmp_path: Path) -> None:
    """from_pretrained would re-initialise the missing tensor at random and only log it."""
    base, donor = own_pair
    _drop(base, DROPPED)
    before = tree_digest(base)
    with pytest.raises(SfnError, match="lacks 1 module") as error:
        merge(base, donor, "o", tmp_path / "out")
    assert DROPPED in str(error.value) and "down weight of layer 1" in str(error.value)
    assert not (tmp_path / "out").exists() and tree_digest(base) == before


def test_destroy_and_plugin_apply_refuse_an_incomplete_model(own_pair, tmp_path: Path) -> None:
    base, donor = own_pair
    plugin = extract_plugin(base, donor, "o", tmp_path / "o.safetensors")
    _drop(base, DROPPED)
    with pytest.raises(SfnError, match=DROPPED.replace(".", r"\.")):
        destroy(base, "o@0", tmp_path / "destroyed")
    with pytest.raises(SfnError, match=DROPPED.replace(".", r"\.")):
        apply_plugin(base, plugin.path, tmp_path / "applied", force=True)
    assert not (tmp_path / "destroyed").exists() and not (tmp_path / "applied").exists()


def test_merge_refuses_a_donor_with_another_layer_count(pair, tmp_path: Path) -> None:
    """`o@-1` would otherwise mean layer 3 of the base but layer 3 of the donor's 6."""
    config = TINY_CONFIGS["llama"]()
    config.num_hidden_layers = 6
    import transformers as tf
    import torch

    torch.manual_seed(2)
    deep = tmp_path / "deep"
    tf.AutoModelForCausalLM.from_config(config).save_pretrained(deep)
    with pytest.raises(SfnError, match="layer count differs: .* has 4, .* has 6"):
        merge(pair[0], deep, "o@-1", tmp_path / "out")
    with pytest.raises(SfnError, match="layer count differs"):
        extract_plugin(pair[0], deep, "o", tmp_path / "o.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox", "gemma", "phi3"])
def test_complete_models_of_other_architectures_pass_the_check(tmp_path: Path, arch: str) -> None:
    """The check compares canonical parts, so GPT-NeoX's embed_out, a tied head or a fused qkv are no alarm."""
    base, donor = tmp_path / "base", tmp_path / "donor"
    build_tiny_model(arch, seed=0).save_pretrained(base)
    build_tiny_model(arch, seed=1).save_pretrained(donor)
    assert merge(base, donor, "o", tmp_path / "out").out.is_dir()
