"""Layer structure and the layer-removal plan: where each architecture keeps its layers and how removing some
shortens the config, the same plan for the on-disk and the in-memory executor."""

from __future__ import annotations

import pytest
import torch
from tiny_models import ARCHITECTURES

from sfn.registry import architecture_for, layer_count, layer_in_name, layer_removal


def test_each_architecture_names_its_layer_list_and_count() -> None:
    gpt2, generic = architecture_for("gpt2")
    assert (gpt2.layer_containers, gpt2.layer_count_keys, generic) == (("h",), ("n_layer",), False)
    llama, _ = architecture_for("llama")
    assert (llama.layer_containers, llama.layer_count_keys) == (("layers",), ("num_hidden_layers",))
    unknown, generic = architecture_for("mystery")
    assert generic and set(unknown.layer_containers) == {"layers", "h", "blocks"}
    assert layer_count({"model_type": "gpt2", "n_layer": 12}) == 12
    assert layer_count({"model_type": "llama", "n_layer": 12}) is None  # llama states its count as num_hidden_layers
    assert layer_count({"model_type": "mystery", "num_layers": 3}) == 3


def test_layer_index_from_a_name_uses_the_architectures_list() -> None:
    gpt2, _ = architecture_for("gpt2")
    llama, _ = architecture_for("llama")
    assert layer_in_name("transformer.h.7.attn.bias", gpt2) == 7
    assert layer_in_name("model.layers.7.rotary_emb.inv_freq", gpt2) is None
    assert layer_in_name("model.layers.12.extra", llama) == 12


def test_removal_renumbers_and_shortens_every_per_layer_list() -> None:
    config = {
        "model_type": "qwen2",
        "num_hidden_layers": 5,
        "layer_types": ["a", "b", "c", "d", "e"],
        "architectures": ["A", "B", "C", "D", "E"],  # five entries by chance: not per layer
        "text_config": {"num_hidden_layers": 5, "no_rope_layers": [1, 0, 1, 0, 1]},
        "hidden_size": 5,  # equal to the layer count but not a layer count key
    }
    removal = layer_removal(config, [3, 1, 3], 5)
    assert removal.removed == (1, 3) and removal.kept == [0, 2, 4]
    assert removal.renamed("model.layers.4.mlp.up_proj.weight", 4) == "model.layers.2.mlp.up_proj.weight"
    assert removal.renamed("model.layers.0.mlp.up_proj.weight", 0) == "model.layers.0.mlp.up_proj.weight"
    assert sorted(removal.config_changes(config), key=str) == sorted([
        (None, "num_hidden_layers", 3),
        (None, "layer_types", ["a", "c", "e"]),
        ("text_config", "num_hidden_layers", 3),
        ("text_config", "no_rope_layers", [1, 1, 1]),
    ], key=str)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_architectures_layer_list_is_found_in_the_loaded_model(loaded_model, arch: str) -> None:
    model = loaded_model(arch)
    config = model.config.to_dict()
    architecture, generic = architecture_for(config["model_type"])
    assert not generic
    lists = [name for name, module in model.named_modules()
             if isinstance(module, torch.nn.ModuleList) and name.rpartition(".")[2] in architecture.layer_containers]
    assert len(lists) == 1 and len(model.get_submodule(lists[0])) == layer_count(config)
