"""The module map: every tensor of every supported architecture classified, on disk and in memory."""

from __future__ import annotations

import logging
import shutil
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_models import ARCHITECTURES, write_config

from sfn.io import open_checkpoint
from sfn.registry import ModuleMap, classify_tensors, module_map, module_map_of

_LLAMA = {(kind, "weight") for kind in ("q", "k", "v", "o", "gate", "up", "down", "attn_norm", "mlp_norm")}
_GEMMA2 = _LLAMA | {("post_attn_norm", "weight"), ("post_mlp_norm", "weight")}
_QK_NORM = {("q_norm", "weight"), ("k_norm", "weight")}
_BIASES = {("q", "bias"), ("k", "bias"), ("v", "bias")}
_GPT = {
    (kind, param)
    for kind in ("q", "k", "v", "o", "fc_in", "fc_out", "attn_norm", "mlp_norm")
    for param in ("weight", "bias")
}

#: (kind, param) of the parts of every layer
LAYER_KINDS: dict[str, set[tuple[str, str]]] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA | _BIASES,
    "qwen3": _LLAMA | _QK_NORM,
    "gemma": _LLAMA,
    "gemma2": _GEMMA2,
    "gemma3": _GEMMA2 | _QK_NORM,
    "phi3": _LLAMA,
    "gpt2": _GPT,
    "gpt_neox": _GPT,
}
_UNTIED = {("embed", "weight"), ("final_norm", "weight"), ("head", "weight")}
_TIED = {("embed", "weight"), ("final_norm", "weight")}
#: (kind, param) of the parts outside the layers
GLOBAL_KINDS: dict[str, set[tuple[str, str]]] = {
    "llama": _UNTIED,
    "mistral": _UNTIED,
    "qwen2": _UNTIED,
    "qwen3": _UNTIED,
    "gemma": _TIED,
    "gemma2": _TIED,
    "gemma3": _TIED,
    "phi3": _UNTIED,
    "gpt2": {("embed", "weight"), ("pos_embed", "weight"), ("final_norm", "weight"), ("final_norm", "bias")},
    "gpt_neox": {("embed", "weight"), ("head", "weight"), ("final_norm", "weight"), ("final_norm", "bias")},
}
FUSED_TENSORS = {"phi3": ("qkv_proj", "gate_up_proj"), "gpt2": ("c_attn",), "gpt_neox": ("query_key_value",)}
NUM_LAYERS = 4  # tests/conftest.py builds every tiny model with 4 layers


def _map_of_dir(directory: Path, **kwargs) -> ModuleMap:
    with open_checkpoint(directory) as checkpoint:
        return module_map(checkpoint, **kwargs)


def _signature(mm: ModuleMap) -> set[tuple]:
    return {(p.kind, p.layer, p.param, p.shape, p.rows, p.transposed) for p in mm.parts}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_saved_tensor_is_classified(arch: str, tiny_model_dir, caplog) -> None:
    directory = tiny_model_dir(arch)
    with caplog.at_level(logging.WARNING, logger="sfn"), open_checkpoint(directory) as checkpoint:
        mm = module_map(checkpoint)
        names = set(checkpoint.tensors())
    assert mm.unclassified == []
    assert set(mm.tensor_names) == names
    assert not mm.generic
    # sfn's own warnings only: transformers' config warnings differ between its releases (5.16.1, the
    # floor, warns about gemma3's per-layer-type rope keys).
    assert [r.getMessage() for r in caplog.records if r.name.startswith("sfn")] == []


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_kinds_layers_and_tied_embeddings_per_architecture(arch: str, tiny_model_dir, loaded_model) -> None:
    mm = _map_of_dir(tiny_model_dir(arch))
    assert mm.num_layers == NUM_LAYERS
    for layer in range(NUM_LAYERS):
        assert {(p.kind, p.param) for p in mm.parts if p.layer == layer} == LAYER_KINDS[arch], f"layer {layer}"
    assert {p.layer for p in mm.parts} == {None, *range(NUM_LAYERS)}
    assert {(p.kind, p.param) for p in mm.parts if p.layer is None} == GLOBAL_KINDS[arch]
    # each (kind, layer, param) is one part: a selector never gets two tensors for one module
    keys = [(p.kind, p.layer, p.param) for p in mm.parts]
    assert len(keys) == len(set(keys))

    model = loaded_model(arch)
    truly_tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert mm.tied_embeddings is truly_tied


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_parts_have_hf_shapes_and_cover_each_tensor_exactly_once(arch: str, tiny_model_dir) -> None:
    directory = tiny_model_dir(arch)
    with open_checkpoint(directory) as checkpoint:
        mm = module_map(checkpoint)
        infos = checkpoint.tensors()
        config = checkpoint.config
    hidden = config.get("hidden_size") or config["n_embd"]
    heads = config.get("num_attention_heads") or config["n_head"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    for part in mm.parts:
        if part.param == "weight" and part.kind in ("q", "k", "v"):
            out = (heads if part.kind == "q" else kv_heads) * head_dim
            assert part.shape == (out, hidden), part
        if part.param == "weight" and part.kind == "o":
            assert part.shape == (hidden, heads * head_dim), part
    for name, info in infos.items():
        parts = mm.parts_of(name)
        assert sum(p.numel for p in parts) == info.numel, name
        if len(parts) > 1:  # fused: the row ranges tile the output rows, without overlap
            rows = sorted(r for p in parts for r in p.rows)
            out_rows = info.shape[-1] if parts[0].transposed and len(info.shape) == 2 else info.shape[0]
            assert rows[0][0] == 0 and rows[-1][1] == out_rows, name
            assert all(a[1] == b[0] for a, b in pairwise(rows)), name


@pytest.mark.parametrize("arch", FUSED_TENSORS)
def test_fused_tensors_are_split_into_their_kinds(arch: str, tiny_model_dir) -> None:
    mm = _map_of_dir(tiny_model_dir(arch))
    for part in mm.parts:
        is_fused = any(f".{stem}." in part.tensor for stem in FUSED_TENSORS[arch])
        assert part.fused is is_fused, part
    assert all(p.transposed for p in mm.parts if p.tensor.endswith("attn.c_attn.weight"))
    assert all(not p.transposed for p in mm.parts if ".wte." in p.tensor or ".wpe." in p.tensor)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_module_map_of_loaded_model_agrees_with_checkpoint(arch: str, tiny_model_dir, loaded_model) -> None:
    on_disk = _map_of_dir(tiny_model_dir(arch))
    in_memory = module_map_of(loaded_model(arch))
    assert in_memory.unclassified == []
    assert _signature(in_memory) == _signature(on_disk)
    assert in_memory.num_layers == on_disk.num_layers
    assert in_memory.tied_embeddings == on_disk.tied_embeddings
    assert in_memory.model_type == on_disk.model_type


def _copy_model(src: Path, dst: Path, extra: dict[str, torch.Tensor] | None = None, **config) -> Path:
    dst.mkdir(parents=True)
    tensors = load_file(src / "model.safetensors")
    save_file({**tensors, **(extra or {})}, dst / "model.safetensors", metadata={"format": "pt"})
    shutil.copyfile(src / "config.json", dst / "config.json")
    write_config(dst, **config)
    return dst


# gemma2/3 are left out: their `post_attention_layernorm` means something else than in the common scheme.
@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "gpt2", "gpt_neox"])
def test_unknown_model_type_classifies_like_its_own_rules(arch: str, tiny_model_dir, tmp_path, caplog) -> None:
    known = _map_of_dir(tiny_model_dir(arch))
    mystery = _copy_model(tiny_model_dir(arch), tmp_path / "mystery", model_type="mystery")
    with caplog.at_level(logging.WARNING, logger="sfn"):
        generic = _map_of_dir(mystery)
    assert generic.generic and generic.model_type == "mystery"
    assert generic.unclassified == []
    assert _signature(generic) == _signature(known)
    assert generic.num_layers == known.num_layers and generic.tied_embeddings == known.tied_embeddings
    # the fallback is announced once, and nothing is reported unclassified
    assert len(caplog.records) == 1 and "'mystery'" in caplog.records[0].getMessage()


def test_unclassified_tensors_are_listed_in_one_warning(tiny_model_dir, tmp_path, caplog) -> None:
    strange = {
        "model.layers.0.self_attn.mystery_proj.weight": torch.zeros(2, 2),
        "model.vision_tower.patch_embed.weight": torch.zeros(3),
    }
    mystery = _copy_model(tiny_model_dir("llama"), tmp_path / "mystery", strange, model_type="mystery")
    with caplog.at_level(logging.WARNING, logger="sfn"):
        mm = _map_of_dir(mystery)
    assert sorted(mm.unclassified) == sorted(strange)
    assert not any(p.tensor in strange for p in mm.parts)
    assert len(mm.parts) == len(_map_of_dir(tiny_model_dir("llama")).parts)
    listing = [r for r in caplog.records if any(name in r.getMessage() for name in strange)]
    assert len(listing) == 1
    assert listing[0].levelno == logging.WARNING
    assert all(name in listing[0].getMessage() for name in strange)
    assert "2 tensors" in listing[0].getMessage()
    assert len(caplog.records) == 2  # the listing, and the notice that the architecture is unknown


def test_warn_false_is_silent(tiny_model_dir, tmp_path, caplog) -> None:
    strange = {"model.vision_tower.patch_embed.weight": torch.zeros(3)}
    mystery = _copy_model(tiny_model_dir("llama"), tmp_path / "mystery", strange, model_type="mystery")
    with caplog.at_level(logging.WARNING, logger="sfn"):
        mm = _map_of_dir(mystery, warn=False)
    assert mm.unclassified == list(strange)
    assert caplog.records == []


def test_classify_tensors_ignores_buffers_and_reads_layer_count_from_config() -> None:
    shapes = {
        "transformer.h.0.attn.bias": (1, 1, 8, 8),  # GPT-2's causal-mask buffer in old checkpoints
        "transformer.h.0.attn.masked_bias": (),
        "model.layers.0.self_attn.rotary_emb.inv_freq": (4,),
        "model.layers.0.self_attn.q_proj.weight": (8, 8),
    }
    mm = classify_tensors(shapes, {"model_type": "llama", "num_hidden_layers": 6}, warn=False)
    assert mm.unclassified == []
    assert [(p.tensor, p.kind, p.layer) for p in mm.parts] == [("model.layers.0.self_attn.q_proj.weight", "q", 0)]
    assert mm.num_layers == 6
    # without the config's count, the highest layer seen decides
    assert classify_tensors(shapes, {"model_type": "llama"}, warn=False).num_layers == 1
