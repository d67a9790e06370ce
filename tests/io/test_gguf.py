"""GGUFCheckpoint against transformers' own load of the same file: names, shapes and exact values."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from transformers import AutoModelForCausalLM

from sfn.errors import SfnError
from sfn.io import open_checkpoint
from sfn.io.gguf_reader import GGUFCheckpoint
from tiny_gguf import FFN, HEADS, HIDDEN, KV_HEADS, LAYERS, SPECS, TinySpec, write_tiny_gguf



def transformers_state_dict(path: Path) -> dict[str, torch.Tensor]:
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    return model.state_dict()


@pytest.fixture(scope="session")
def tiny_ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, torch.Tensor]]]:
    """spec name -> (GGUF path, transformers' state dict of it)."""
    built = {}
    for name, spec in SPECS.items():
        path = write_tiny_gguf(tmp_path_factory.mktemp(name) / f"{name}.gguf", spec)
        built[name] = (path, transformers_state_dict(path))
    return built


def expected_names(spec: TinySpec, state: dict[str, torch.Tensor]) -> set[str]:
    # transformers lists the tied head under its own name too; the file has no such tensor
    return set(state) - ({"lm_head.weight"} if spec.tied else set())


@pytest.mark.parametrize("spec_name", SPECS)
def test_names_shapes_and_values_equal_transformers(tiny_ggufs, spec_name: str) -> None:
    path, state = tiny_ggufs[spec_name]
    with GGUFCheckpoint(path) as ckpt:
        assert set(ckpt.tensors()) == expected_names(SPECS[spec_name], state)
        for name, info in ckpt.tensors().items():
            assert info.shape == tuple(state[name].shape), name
            assert info.dtype == torch.float32
            value = ckpt.read(name)
            assert value.dtype == torch.float32 and value.shape == info.shape
            assert torch.equal(value, state[name]), name


@pytest.mark.parametrize("spec_name", SPECS)
def test_row_reads_equal_slices_of_full_reads(tiny_ggufs, spec_name: str) -> None:
    path, _ = tiny_ggufs[spec_name]
    with GGUFCheckpoint(path) as ckpt:
        for name, info in ckpt.tensors().items():
            full = ckpt.read(name)
            n = info.shape[0]
            for rows in (slice(0, n), slice(1, 3), slice(n // 2, None), slice(n - 1, n + 5), slice(3, 3)):
                assert torch.equal(ckpt.read(name, rows), full[rows]), (name, rows)


def test_config_is_read_from_metadata(tiny_ggufs) -> None:
    config = GGUFCheckpoint(tiny_ggufs["llama-tied"][0]).config
    assert config["model_type"] == "llama"
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["tie_word_embeddings"] is True
    assert (config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]) == (HIDDEN, FFN, LAYERS)
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (HEADS, KV_HEADS)
    assert GGUFCheckpoint(tiny_ggufs["llama-untied"][0]).config["tie_word_embeddings"] is False
    assert GGUFCheckpoint(tiny_ggufs["qwen3"][0]).config["architectures"] == ["Qwen3ForCausalLM"]


def test_tied_embeddings_expose_no_head(tiny_ggufs) -> None:
    assert "lm_head.weight" not in GGUFCheckpoint(tiny_ggufs["llama-tied"][0]).tensors()
    assert "lm_head.weight" in GGUFCheckpoint(tiny_ggufs["llama-untied"][0]).tensors()


def test_open_checkpoint_dispatches_files_and_directories(tiny_ggufs) -> None:
    path = tiny_ggufs["llama-tied"][0]
    assert isinstance(open_checkpoint(path), GGUFCheckpoint)
    assert isinstance(open_checkpoint(path.parent), GGUFCheckpoint)


def test_nothing_is_dequantized_at_open(tiny_ggufs, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []
    real = gguf.quants.dequantize

    def counting(data: np.ndarray, qtype: Q) -> np.ndarray:
        calls.append((qtype.name, data.shape[0]))
        return real(data, qtype)

    monkeypatch.setattr(gguf.quants, "dequantize", counting)
    with GGUFCheckpoint(tiny_ggufs["llama-tied"][0]) as ckpt:
        ckpt.tensors()
        assert calls == []
        ckpt.read("model.layers.0.mlp.up_proj.weight", slice(0, 2))
        assert calls == [("Q8_0", 2)]  # only the rows asked for
        ckpt.read("model.layers.0.self_attn.q_proj.weight", slice(0, 2))
        assert calls[-1] == ("Q4_0", HIDDEN)  # permuted rows: the whole tensor


def test_mistral_maps_like_the_llama_file_it_is(tiny_ggufs, tmp_path: Path) -> None:
    # transformers cannot load this one itself (gguf has no "mistral" name table), so compare it with
    # the same tensors written as a llama file
    path = write_tiny_gguf(tmp_path / "mistral.gguf", TinySpec("llama", name="mistral"))
    llama_path, llama_state = tiny_ggufs["llama-tied"]
    with GGUFCheckpoint(path) as ckpt:
        assert ckpt.config["model_type"] == "mistral"
        assert ckpt.config["architectures"] == ["MistralForCausalLM"]
        assert set(ckpt.tensors()) == set(GGUFCheckpoint(llama_path).tensors())
        for name in ckpt.tensors():
            assert torch.equal(ckpt.read(name), llama_state[name]), name


def test_unknown_architecture_opens_with_gguf_names(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "odd.gguf", TinySpec("notanarch"))
    stored = {t.name: t for t in gguf.GGUFReader(path).tensors}
    with GGUFCheckpoint(path) as ckpt:
        assert ckpt.config == {}
        assert set(ckpt.tensors()) == set(stored)
        q = stored["blk.0.attn_q.weight"]
        as_stored = torch.from_numpy(gguf.quants.dequantize(q.data, q.tensor_type))
        # no known layout, so read as stored: still permuted
        assert torch.equal(ckpt.read("blk.0.attn_q.weight"), as_stored)
        assert ckpt.info("blk.0.attn_q.weight").shape == (HIDDEN, HIDDEN)


def test_corrupt_files_raise_sfn_error(tiny_ggufs, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"this is not a gguf file at all" * 10)
    truncated = tmp_path / "truncated.gguf"
    whole = tiny_ggufs["llama-tied"][0].read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    for path in (garbage, truncated):
        with pytest.raises(SfnError, match=path.name):
            GGUFCheckpoint(path)


@pytest.mark.slow
def test_smollm2_equals_transformers() -> None:
    from sfn.io.smollm2 import INSTALL, smollm2_gguf

    path = smollm2_gguf()
    if path is None:
        pytest.skip(f"the SmolLM2 GGUF is not installed: {INSTALL}")
    state = transformers_state_dict(path)
    with GGUFCheckpoint(path) as ckpt:
        assert ckpt.config["tie_word_embeddings"] is True
        assert set(ckpt.tensors()) == set(state) - {"lm_head.weight"}
        for name in ckpt.tensors():
            assert torch.equal(ckpt.read(name), state[name]), name
        q = "model.layers.5.self_attn.q_proj.weight"
        assert torch.equal(ckpt.read(q, slice(60, 200)), state[q][60:200])
        embed = "model.embed_tokens.weight"
        assert torch.equal(ckpt.read(embed, slice(1000, 1010)), state[embed][1000:1010])
