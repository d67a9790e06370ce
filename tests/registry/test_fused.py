"""Fused and transposed tensors split as the modelling code uses them, and read back whole or in blocks.

The splits are checked against what transformers itself computes: a custom attention function
registered with `AttentionInterface` records the query, key and value states each attention module
attends with, and a forward pre-hook records the hidden states that module received. At position 0
rotary embeddings are the identity (cos = 1, sin = 0, checked), so the recorded states are exactly the
projections `x @ W.T + b` of the split parts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from sfn.io import Checkpoint, open_checkpoint
from sfn.io.dtypes import tensor_bits
from sfn.registry import ModuleMap, ModulePart, iter_part_blocks, module_map, read_part

CAPTURE = "sfn_test_capture"
TOKEN = 7
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}  # float32 matmuls in a different order; a wrong split is off by ~1e-1
FUSED_ARCHS = ["phi3", "gpt2", "gpt_neox"]


@pytest.fixture(scope="module")
def attention_records() -> Iterator[dict[torch.nn.Module, dict[str, torch.Tensor]]]:
    """Registers the recording attention function `CAPTURE`; records land here, keyed by attention module."""
    records: dict[torch.nn.Module, dict[str, torch.Tensor]] = {}

    def attend(module, query, key, value, attention_mask, **kwargs):
        states = {"q": query, "k": key, "v": value}
        records.setdefault(module, {}).update({kind: s.detach().clone() for kind, s in states.items()})
        return ALL_ATTENTION_FUNCTIONS["sdpa"](module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register(CAPTURE, attend)
    yield records
    AttentionInterface._global_mapping.pop(CAPTURE, None)


@contextmanager
def _recording(model: PreTrainedModel, modules: list[torch.nn.Module], records: dict) -> Iterator[None]:
    """Use the recording attention and record each module's input hidden states and rotary (cos, sin)."""

    def before(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        records.setdefault(module, {}).update(x=hidden.detach().clone(), rope=kwargs.get("position_embeddings"))

    previous = model.config._attn_implementation
    model.set_attn_implementation(CAPTURE)
    handles = [m.register_forward_pre_hook(before, with_kwargs=True) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        model.set_attn_implementation(previous)


def _parts_by_key(mm: ModuleMap) -> dict[tuple[str, int | None, str], ModulePart]:
    return {(p.kind, p.layer, p.param): p for p in mm.parts}


def _module_of(part: ModulePart) -> str:
    """`model.layers.0.self_attn.qkv_proj.weight` -> `model.layers.0.self_attn`."""
    return part.tensor.rsplit(".", 2)[0]


def _project(checkpoint: Checkpoint, parts: dict, kind: str, layer: int, x: torch.Tensor) -> torch.Tensor:
    out = x @ read_part(checkpoint, parts[(kind, layer, "weight")]).T
    bias = parts.get((kind, layer, "bias"))
    return out if bias is None else out + read_part(checkpoint, bias)


@pytest.mark.parametrize("arch", FUSED_ARCHS)
def test_fused_qkv_parts_give_the_states_the_model_attends_with(
    arch: str, tiny_model_dir, loaded_model, attention_records
) -> None:
    model = loaded_model(arch)
    with open_checkpoint(tiny_model_dir(arch)) as checkpoint:
        mm = module_map(checkpoint)
        parts = _parts_by_key(mm)
        assert all(parts[(kind, layer, "weight")].fused for kind in "qkv" for layer in range(mm.num_layers))
        modules = [model.get_submodule(_module_of(parts[("q", layer, "weight")])) for layer in range(mm.num_layers)]
        attention_records.clear()
        with _recording(model, modules, attention_records), torch.no_grad():
            model(input_ids=torch.tensor([[TOKEN]]), use_cache=False)

        for layer, module in enumerate(modules):
            record = attention_records[module]
            if arch != "gpt2":  # GPT-2 adds learned positions before the block; the others rotate q and k
                cos, sin = record["rope"]
                assert torch.equal(cos, torch.ones_like(cos)) and torch.equal(sin, torch.zeros_like(sin))
            head_dim = record["q"].shape[-1]
            for kind in "qkv":
                expected = _project(checkpoint, parts, kind, layer, record["x"])  # [batch, seq, heads * head_dim]
                expected = expected.view(*expected.shape[:2], -1, head_dim).transpose(1, 2)
                torch.testing.assert_close(record[kind], expected, **TOLERANCE, msg=f"layer {layer} {kind}")
        heads = model.config.num_attention_heads
        kv_heads = getattr(model.config, "num_key_value_heads", None) or heads
        assert record["q"].shape[1] == heads and record["k"].shape[1] == record["v"].shape[1] == kv_heads


def test_phi3_gate_up_parts_give_the_mlp_output(tiny_model_dir, loaded_model) -> None:
    model = loaded_model("phi3")
    act = ACT2FN[model.config.hidden_act]
    with open_checkpoint(tiny_model_dir("phi3")) as checkpoint:
        mm = module_map(checkpoint)
        parts = _parts_by_key(mm)
        seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        handles = []
        for layer in range(mm.num_layers):
            gate = parts[("gate", layer, "weight")]
            assert gate.fused and parts[("up", layer, "weight")].tensor == gate.tensor
            mlp = model.get_submodule(_module_of(gate))

            def record(module, args, output, layer=layer):
                seen[layer] = (args[0].detach().clone(), output.detach().clone())

            handles.append(mlp.register_forward_hook(record))
        try:
            with torch.no_grad():
                model(input_ids=torch.tensor([[TOKEN, 3, 11]]), use_cache=False)
        finally:
            for handle in handles:
                handle.remove()

        assert sorted(seen) == list(range(mm.num_layers))
        for layer, (x, output) in seen.items():
            gate, up = (_project(checkpoint, parts, kind, layer, x) for kind in ("gate", "up"))
            expected = _project(checkpoint, parts, "down", layer, up * act(gate))
            torch.testing.assert_close(output, expected, **TOLERANCE)


def _block_row(part: ModulePart) -> int:
    """Elements of one stored row that belong to `part`: the least a block can hold."""
    if part.transposed and len(part.shape) == 2:
        return part.shape[0]
    return math.prod(part.shape[1:])


@pytest.mark.parametrize("arch", [*FUSED_ARCHS, "llama"])
@pytest.mark.parametrize("max_elements", [1, 5, 64, 10**9])
def test_iter_part_blocks_cover_exactly_the_part(arch: str, max_elements: int, tiny_model_dir) -> None:
    with open_checkpoint(tiny_model_dir(arch)) as checkpoint:
        mm = module_map(checkpoint)
        checked = [p for p in mm.parts if p.layer in (0, None)]
        assert any(p.fused for p in checked) == (arch in FUSED_ARCHS)
        for part in checked:
            whole = read_part(checkpoint, part)
            assert tuple(whole.shape) == part.shape
            blocks = list(iter_part_blocks(checkpoint, part, max_elements))
            assert all(b.size <= max(max_elements, _block_row(part)) for b in blocks), part
            joined = np.concatenate(blocks)  # stored bits
            # transposed parts come in stored orientation ([in, out]), row blocks of the input dimension
            if part.transposed and len(part.shape) == 2:
                joined = joined.T
            np.testing.assert_array_equal(joined.reshape(whole.shape), tensor_bits(whole), err_msg=str(part))


def test_iter_part_blocks_row_limit_keeps_the_first_rows(tiny_model_dir) -> None:
    with open_checkpoint(tiny_model_dir("llama")) as checkpoint:
        embed = _parts_by_key(module_map(checkpoint))[("embed", None, "weight")]
        blocks = list(iter_part_blocks(checkpoint, embed, max_elements=64, row_limit=10))
        assert len(blocks) == 5  # 64 elements = 2 rows of 32
        np.testing.assert_array_equal(np.concatenate(blocks), tensor_bits(read_part(checkpoint, embed)[:10]))


def test_read_part_of_transposed_conv1d_is_hf_orientation(tiny_model_dir, loaded_model) -> None:
    """GPT-2 stores Conv1D weights [in, out]; read_part returns [out, in] like nn.Linear."""
    model = loaded_model("gpt2")
    with open_checkpoint(tiny_model_dir("gpt2")) as checkpoint:
        parts = _parts_by_key(module_map(checkpoint))
        for kind, module in [("o", "attn.c_proj"), ("fc_in", "mlp.c_fc"), ("fc_out", "mlp.c_proj")]:
            part = parts[(kind, 1, "weight")]
            stored = model.get_submodule(f"transformer.h.1.{module}").weight
            assert part.shape == tuple(stored.T.shape)
            assert torch.equal(read_part(checkpoint, part), stored.detach().T)
