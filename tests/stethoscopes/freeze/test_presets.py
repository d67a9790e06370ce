"""Which parameters require grad for each preset, norms on and off, tied, fused and GPT-2 layouts."""

from __future__ import annotations

import logging

import pytest

from sfn.errors import SfnError
from sfn.stethoscopes.freeze import PRESETS, preset_selector, trainable_parameters

LLAMA_NORMS = {"input_layernorm", "post_attention_layernorm", "model.norm"}


def _trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _module_of(name: str) -> str:
    """'model.layers.0.self_attn.o_proj.weight' -> 'o_proj'; 'model.norm.weight' -> 'model.norm'."""
    parts = name.split(".")
    return "model.norm" if name == "model.norm.weight" else parts[-2]


EXPECTED = {
    "emb+head": {"embed_tokens", "lm_head"},
    "emb+head+o": {"embed_tokens", "lm_head", "o_proj"},
    "emb+head+qkvo": {"embed_tokens", "lm_head", "q_proj", "k_proj", "v_proj", "o_proj"},
    "all": {"embed_tokens", "lm_head", "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
}


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("norms", [True, False])
def test_preset_requires_grad(preset: str, norms: bool, build_model) -> None:
    model, _ = build_model("llama")
    chosen = trainable_parameters(model, preset, norms=norms)
    expected = EXPECTED[preset] | (LLAMA_NORMS if norms else set())
    assert {_module_of(name) for name in _trainable(model)} == expected
    assert set(chosen.names) == _trainable(model)
    assert chosen.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert chosen.total == sum(p.numel() for p in model.parameters())
    assert 0 < chosen.share <= 1


def test_all_with_norms_trains_everything(build_model) -> None:
    model, _ = build_model("llama")
    chosen = trainable_parameters(model, "all")
    assert _trainable(model) == {name for name, _ in model.named_parameters()}
    assert chosen.share == 1.0


def test_any_selector_and_layer_range(build_model) -> None:
    model, _ = build_model("llama")
    trainable_parameters(model, "o@1", norms=False)
    assert _trainable(model) == {"model.layers.1.self_attn.o_proj.weight"}
    assert preset_selector("o", norms=True).text == "o; norm"


def test_tied_embeddings_are_one_tensor(build_model) -> None:
    model, _ = build_model("llama", tied=True)
    chosen = trainable_parameters(model, "emb+head", norms=False)
    assert _trainable(model) == {"model.embed_tokens.weight"}
    assert chosen.tied_embeddings and any("tied embeddings" in note for note in chosen.notes)
    head_only = trainable_parameters(model, "head", norms=False)  # the head of a tied model is the embedding
    assert head_only.names == ["model.embed_tokens.weight"]
    assert chosen.total == sum(p.numel() for p in model.parameters())  # counted once


def test_fused_tensor_trains_whole_with_a_warning(caplog: pytest.LogCaptureFixture, build_model) -> None:
    model, _ = build_model("phi3")
    with caplog.at_level(logging.WARNING, logger="sfn"):
        chosen = trainable_parameters(model, "q", norms=False)
    assert _trainable(model) == {f"model.layers.{i}.self_attn.qkv_proj.weight" for i in range(2)}
    assert any("fused tensor" in note for note in chosen.notes)
    assert "only q was selected" in caplog.text


def test_gpt2_layout(build_model) -> None:
    model, _ = build_model("gpt2")
    trainable_parameters(model, "emb+head+o")
    names = _trainable(model)
    assert "transformer.wte.weight" in names and "transformer.wpe.weight" in names
    assert "transformer.h.0.attn.c_proj.weight" in names and "transformer.h.0.ln_1.weight" in names
    assert "transformer.h.0.attn.c_attn.weight" not in names and "transformer.h.0.mlp.c_fc.weight" not in names


def test_nothing_selected_is_an_error(build_model) -> None:
    model, _ = build_model("llama")
    with pytest.raises(SfnError, match="selects no parameter"):
        trainable_parameters(model, "q_norm", norms=False)
    with pytest.raises(SfnError, match="unknown module"):
        trainable_parameters(model, "emb+hed")
