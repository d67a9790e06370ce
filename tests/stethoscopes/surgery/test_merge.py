"""`merge` on disk: which tensors are taken, bit for bit; the output loads; every bad input is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import sfn.io.writer
from sfn.errors import SfnError, SfnErrors
from sfn.stethoscopes.surgery import merge
from sfn.stethoscopes.surgery.cli import merge_command

ARCHS = ["llama", "qwen2", "qwen3", "gemma3", "phi3", "gpt2", "gpt_neox"]
# The tensors that hold o_proj, per architecture.
O_NAMES = {"gpt2": "attn.c_proj", "gpt_neox": "attention.dense"}


def _is_o(name: str, arch: str) -> bool:
    return O_NAMES.get(arch, "self_attn.o_proj") in name


@pytest.mark.parametrize("arch", ARCHS)
def test_merge_o_takes_exactly_o(model_pair, load_tensors, generates, tmp_path: Path, arch: str) -> None:
    base, donor = model_pair(arch)
    result = merge(base, donor, "o", tmp_path / "out")
    out, base_t, donor_t = load_tensors(result.out), load_tensors(base), load_tensors(donor)
    assert out.keys() == base_t.keys()
    taken = [name for name in out if _is_o(name, arch)]
    assert len(taken) >= 4
    for name, tensor in out.items():
        expected = donor_t[name] if _is_o(name, arch) else base_t[name]
        assert torch.equal(tensor, expected), name
        assert tensor.dtype == base_t[name].dtype
    generates(result.out)


def test_fused_rows_are_spliced(model_pair, load_tensors, generates, tmp_path: Path) -> None:
    """Taking q from Phi-3 replaces only the q rows of qkv_proj; k and v rows stay the base's."""
    base, donor = model_pair("phi3")
    result = merge(base, donor, "q,up", tmp_path / "out")
    out, base_t, donor_t = load_tensors(result.out), load_tensors(base), load_tensors(donor)
    q = 4 * 8  # 4 heads of size 8; k and v have 2 heads each
    name = "model.layers.1.self_attn.qkv_proj.weight"
    assert torch.equal(out[name][:q], donor_t[name][:q])
    assert torch.equal(out[name][q:], base_t[name][q:])
    name = "model.layers.2.mlp.gate_up_proj.weight"
    assert torch.equal(out[name][:64], base_t[name][:64]) and torch.equal(out[name][64:], donor_t[name][64:])
    assert set(result.plan.frame().query("source == 'base+donor'")["kinds"]) == {"q", "up"}
    generates(result.out)


def test_gpt2_conv1d_columns_and_neox_interleaved_rows(model_pair, load_tensors, tmp_path: Path) -> None:
    base, donor = model_pair("gpt2")
    out = load_tensors(merge(base, donor, "k", tmp_path / "gpt2").out)
    name = "transformer.h.0.attn.c_attn.weight"  # stored [in, out]: k is the middle third of the columns
    base_t, donor_t = load_file(base / "model.safetensors"), load_file(donor / "model.safetensors")
    assert torch.equal(out[name][:, 32:64], donor_t[name][:, 32:64])
    assert torch.equal(out[name][:, :32], base_t[name][:, :32]) and torch.equal(out[name][:, 64:], base_t[name][:, 64:])
    bias = "transformer.h.0.attn.c_attn.bias"
    assert torch.equal(out[bias][32:64], donor_t[bias][32:64]) and torch.equal(out[bias][:32], base_t[bias][:32])

    base, donor = model_pair("gpt_neox")
    out = load_tensors(merge(base, donor, "v", tmp_path / "neox").out)
    base_t, donor_t = load_file(base / "model.safetensors"), load_file(donor / "model.safetensors")
    name = "gpt_neox.layers.3.attention.query_key_value.weight"
    per_head = 3 * 8  # per head: q, k, v rows of head size 8
    for head in range(4):
        v_rows = slice(head * per_head + 16, head * per_head + 24)
        assert torch.equal(out[name][v_rows], donor_t[name][v_rows])
        assert torch.equal(out[name][head * per_head : head * per_head + 16], base_t[name][head * per_head : head * per_head + 16])


def test_complete_output_directory(model_pair, load_tensors, generates, tmp_path: Path) -> None:
    base, donor = model_pair("qwen2")
    result = merge(base, donor, "o,norm@1-2", tmp_path / "out", shard_size="40KB", dtype="bf16", tokenizer_from="donor")
    names = {p.name for p in result.out.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer.json", "sfn_provenance.json", "README.md", "model.safetensors.index.json"} <= names
    assert len([n for n in names if n.startswith("model-0")]) > 1
    assert all(t.dtype == torch.bfloat16 for t in load_tensors(result.out).values())
    provenance = json.loads((result.out / "sfn_provenance.json").read_text())
    assert provenance["operation"] == "merge" and provenance["parameters"]["take"] == "o,norm@1-2"
    assert set(provenance["inputs"]) == {"base", "donor"}
    assert len(provenance["inputs"]["base"]["files"]["model.safetensors"]) == 64
    assert provenance["tensors"]["model.layers.1.self_attn.o_proj.weight"]["source"] == "donor"
    assert provenance["tensors"]["model.layers.0.self_attn.o_proj.weight"]["source"] == "base"
    assert "sfn merge" in (result.out / "README.md").read_text()
    generates(result.out)


def test_plan_writes_nothing(model_pair, tmp_path: Path) -> None:
    base, donor = model_pair("llama")
    result = merge(base, donor, "o", tmp_path / "out", dry_run=True)
    assert result.out is None and not (tmp_path / "out").exists()
    summary = result.plan.summary()
    assert summary.loc["donor", "tensors"] == 4 and summary.loc["donor", "bytes"] == 4 * 32 * 32 * 4
    cli = CliRunner().invoke(merge_command, [str(base), str(donor), "--take", "o", "--plan"])
    assert cli.exit_code == 0, cli.output
    assert "model.layers.3.self_attn.o_proj.weight" in cli.output and "donor" in cli.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failure_mid_write_leaves_no_output(model_pair, tmp_path: Path, monkeypatch, error: BaseException) -> None:
    base, donor = model_pair("llama")
    writer = sfn.io.writer.ShardedSafetensorsWriter
    calls = []

    def failing(method):
        def wrapper(self, name, value):
            calls.append(name)
            if len(calls) == 5:  # a few tensors (and shards) are already on disk by then
                raise error
            method(self, name, value)

        return wrapper

    monkeypatch.setattr(writer, "write", failing(writer.write))
    monkeypatch.setattr(writer, "write_raw", failing(writer.write_raw))
    with pytest.raises(type(error)):
        merge(base, donor, "o", tmp_path / "out", shard_size="20KB")
    assert len(calls) == 5
    assert list(tmp_path.iterdir()) == []


def _edited_copy(source: Path, target: Path, config_changes: dict | None = None, tensor_changes: dict | None = None) -> Path:
    target.mkdir()
    tensors = load_file(source / "model.safetensors")
    tensors.update(tensor_changes or {})
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((source / "config.json").read_text()) | (config_changes or {})
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_every_mismatch_reported_at_once(model_pair, tmp_path: Path) -> None:
    base, donor = model_pair("llama")
    wide = torch.zeros(32, 40)
    bad = _edited_copy(
        donor, tmp_path / "bad", {"model_type": "mistral", "vocab_size": 80}, {"model.layers.2.self_attn.o_proj.weight": wide}
    )
    with pytest.raises(SfnErrors) as caught:
        merge(base, bad, "o", tmp_path / "out")
    text = str(caught.value)
    assert len(caught.value.problems) == 3
    assert "architectures differ" in text and "vocabulary sizes differ" in text
    assert "o weight of layer 2 (model.layers.2.self_attn.o_proj.weight) is [32, 32]" in text and "[32, 40]" in text
    assert not (tmp_path / "out").exists()


def test_missing_donor_tensor_and_empty_selection(model_pair, tmp_path: Path) -> None:
    base, donor = model_pair("qwen3")
    (tmp_path / "partial").mkdir()
    tensors = {k: v for k, v in load_file(donor / "model.safetensors").items() if "layers.0.self_attn.q_norm" not in k}
    save_file(tensors, tmp_path / "partial" / "model.safetensors")
    (tmp_path / "partial" / "config.json").write_text((donor / "config.json").read_text())
    with pytest.raises(SfnErrors, match="has no q_norm weight of layer 0"):
        merge(base, tmp_path / "partial", "norm", tmp_path / "out")
    with pytest.raises(SfnErrors, match="matches no tensor"):
        merge(base, donor, "fc_in", tmp_path / "out")
    with pytest.raises(SfnErrors, match="outside this 4-layer model"):
        merge(base, donor, "o@2-9", tmp_path / "out")


@pytest.mark.parametrize("take", ["head", "embed", "embed,o"])
def test_tied_embeddings_one_side_refused(model_pair, load_tensors, tmp_path: Path, take: str) -> None:
    base, donor = model_pair("gpt2")  # ties wte and lm_head
    with pytest.raises(SfnErrors, match="ties its input embedding and LM head"):
        merge(base, donor, take, tmp_path / "out")
    both = merge(base, donor, "embed,head", tmp_path / "both")
    assert torch.equal(load_tensors(both.out)["transformer.wte.weight"], load_file(donor / "model.safetensors")["transformer.wte.weight"])


def test_output_directory_refusals(model_pair, tmp_path: Path) -> None:
    base, donor = model_pair("llama")
    with pytest.raises(SfnError, match="overlaps the input"):
        merge(base, donor, "o", base)
    with pytest.raises(SfnError, match="overlaps the input"):
        merge(base, donor, "o", donor / "merged")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("x")
    with pytest.raises(SfnError, match="not empty"):
        merge(base, donor, "o", occupied)
    assert (occupied / "keep.txt").exists()
    with pytest.raises(SfnError, match="not an sfn output"):
        merge(base, donor, "o", occupied, overwrite=True)  # --overwrite replaces only what sfn wrote
    assert (occupied / "keep.txt").exists()
    result = merge(base, donor, "o", occupied, overwrite_any=True)
    assert not (occupied / "keep.txt").exists() and (result.out / "config.json").exists()
    merge(base, donor, "o", occupied, overwrite=True)  # an sfn output now
    cli = CliRunner().invoke(merge_command, [str(base), str(donor), "--take", "o", "--out", str(occupied)])
    assert cli.exit_code == 2 and "not empty" in cli.output
