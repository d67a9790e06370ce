"""The streaming safetensors writer, the atomic output directory and the copying of model extras."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sfn.errors import SfnError
from sfn.io import TensorInfo, open_checkpoint
from sfn.io.writer import (
    ShardedSafetensorsWriter,
    atomic_output_dir,
    check_output_dir,
    copy_model_extras,
    parse_size,
    plan_shards,
    raw_bytes,
)


def _tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(7, 3, generator=generator).to(torch.bfloat16),  # 42 bytes: misaligns what follows
        "b.weight": torch.randn(5, 4, generator=generator),
        "c.bias": torch.arange(3, dtype=torch.int64),
        "d.scalar": torch.tensor(2.5, dtype=torch.float16),
        "e.empty": torch.zeros(0, 4),
    }


def _write(directory: Path, tensors: dict[str, torch.Tensor], shard_bytes: int) -> ShardedSafetensorsWriter:
    writer = ShardedSafetensorsWriter(directory, [TensorInfo(n, tuple(t.shape), t.dtype) for n, t in tensors.items()], shard_bytes)
    for spec in writer.order:
        writer.write(spec.name, tensors[spec.name])
    writer.close()
    return writer


def test_parse_size() -> None:
    assert parse_size("5GB") == 5 * 10**9
    assert parse_size("500 MiB") == 500 * 2**20
    assert parse_size("2e3") == 2000
    assert parse_size(123) == 123
    for bad in ("five", "-1GB", "3XB"):
        with pytest.raises(SfnError):
            parse_size(bad)


def test_shards_keep_alignment_and_limit() -> None:
    specs = [TensorInfo(f"t{i}", (5,), torch.bfloat16 if i % 2 else torch.float32) for i in range(6)]
    shards = plan_shards(specs, 30)
    assert [s.name for shard in shards for s in shard] != [] and sum(len(s) for s in shards) == 6
    for shard in shards:
        assert [s.dtype.itemsize for s in shard] == sorted((s.dtype.itemsize for s in shard), reverse=True)
        assert sum(s.nbytes for s in shard) <= 30 or len(shard) == 1


def test_single_file_roundtrip(tmp_path: Path) -> None:
    tensors = _tensors()
    _write(tmp_path, tensors, 10**9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    loaded = load_file(tmp_path / "model.safetensors")
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert torch.equal(loaded[name], tensor), name
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "pt"}


def test_sharded_roundtrip_with_index(tmp_path: Path) -> None:
    tensors = _tensors()
    writer = _write(tmp_path, tensors, 50)
    assert len(writer.shards) > 1
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(tensors)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in tensors.values())
    assert set(index["weight_map"].values()) == {f"model-{i:05d}-of-{len(writer.shards):05d}.safetensors" for i in range(1, len(writer.shards) + 1)}
    with open_checkpoint(tmp_path) as checkpoint:
        for name, tensor in tensors.items():
            assert torch.equal(checkpoint.read(name), tensor), name


def _refused(*args):
    raise OSError(18, "Invalid cross-device link")


@pytest.mark.parametrize(
    "kernel_copy",
    ["kernel", "absent", "refused"],  # Linux; macOS/Windows (no os.copy_file_range); across filesystems
)
def test_raw_copy_is_bit_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: str) -> None:
    import sfn.io.writer as writer_module

    if kernel_copy == "kernel" and writer_module.copy_file_range is None:
        pytest.skip("os.copy_file_range is Linux-only")
    if kernel_copy != "kernel":
        monkeypatch.setattr(writer_module, "copy_file_range", None if kernel_copy == "absent" else _refused)
        monkeypatch.setattr(writer_module, "COPY_BUFFER", 7)  # several buffered blocks per tensor
    tensors = _tensors()
    save_file(tensors, tmp_path / "src.safetensors")
    out = tmp_path / "out"
    out.mkdir()
    with open_checkpoint(tmp_path / "src.safetensors") as source:
        writer = ShardedSafetensorsWriter(out, list(source.tensors().values()), 10**9)
        for spec in writer.order:
            writer.write_raw(spec.name, raw_bytes(source, spec.name))
        writer.close()
    loaded = load_file(out / "model.safetensors")
    for name, tensor in tensors.items():
        assert torch.equal(loaded[name], tensor), name


def test_writer_refuses_wrong_order_shape_and_missing(tmp_path: Path) -> None:
    specs = [TensorInfo("a", (2,), torch.float32), TensorInfo("b", (2,), torch.float32)]
    writer = ShardedSafetensorsWriter(tmp_path, specs, 10**9)
    with pytest.raises(ValueError, match="order"):
        writer.write("b", torch.zeros(2))
    with pytest.raises(ValueError, match="planned"):
        writer.write("a", torch.zeros(3))
    writer.write("a", torch.zeros(2))
    with pytest.raises(ValueError, match="never written"):
        writer.close()
    writer.abort()


def test_atomic_output_appears_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "model"
    with atomic_output_dir(out) as work:
        assert work.parent == tmp_path and work != out
        (work / "x.txt").write_text("done")
        assert not out.exists()
    assert (out / "x.txt").read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_atomic_output_left_clean_on_failure(tmp_path: Path, error: BaseException) -> None:
    with pytest.raises(type(error)):
        with atomic_output_dir(tmp_path / "model") as work:
            (work / "half.safetensors").write_bytes(b"12345")
            raise error
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_and_refusals(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "sfn_provenance.json").write_text("{}")  # sfn wrote it, so --overwrite may replace it
    with pytest.raises(SfnError, match="not empty"):
        check_output_dir(out)
    with atomic_output_dir(out, overwrite=True) as work:
        (work / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    source = tmp_path / "input"
    source.mkdir()
    for bad in (source, source / "sub", tmp_path):
        with pytest.raises(SfnError, match="refusing to write"):
            check_output_dir(bad, inputs=[source])
    (tmp_path / "file").write_text("")
    with pytest.raises(SfnError, match="not a directory"):
        check_output_dir(tmp_path / "file")


def test_copy_model_extras(tmp_path: Path) -> None:
    base, tokenizer, out = tmp_path / "base", tmp_path / "tok", tmp_path / "out"
    for directory in (base, tokenizer, out):
        directory.mkdir()
    for name in ("generation_config.json", "tokenizer.json", "model.safetensors", "config.json"):
        (base / name).write_text(f"base {name}")
    for name in ("tokenizer.json", "tokenizer_config.json", "merges.txt"):
        (tokenizer / name).write_text(f"donor {name}")
    written = copy_model_extras(base, out, tokenizer_dir=tokenizer, config={"model_type": "llama"})
    assert sorted(written) == sorted(["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "merges.txt"])
    assert (out / "tokenizer.json").read_text() == "donor tokenizer.json"
    assert json.loads((out / "config.json").read_text()) == {"model_type": "llama"}
    assert not (out / "model.safetensors").exists()
