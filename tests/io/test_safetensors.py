"""The memory-mapped safetensors reader: single files, sharded directories, rows, page release, bad files."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sfn.errors import SfnError
from sfn.io import TensorInfo, open_checkpoint
from sfn.io.safetensors_reader import SafetensorsCheckpoint


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    special = torch.tensor([float("nan"), -0.0, float("inf"), -float("inf"), 1e-40, 65504.0])
    return {
        "f32": torch.cat([torch.randn(5, 6, generator=g).flatten(), special]).reshape(6, 6),
        "bf16": torch.randn(7, 3, generator=g).to(torch.bfloat16),  # 42 bytes: misaligns what follows
        "f16": torch.cat([torch.randn(10, generator=g), special]).to(torch.float16).reshape(4, 4),
        "f64": torch.randn(3, 2, 2, generator=g, dtype=torch.float64),
        "f8": torch.randn(4, 4, generator=g).to(torch.float8_e4m3fn),
        "i64": torch.tensor([[-(2**62), 2**62 + 1], [0, -1]], dtype=torch.int64),
        "i32": torch.arange(-6, 6, dtype=torch.int32).reshape(3, 4),
        "i16": torch.tensor([-32768, 32767, 5], dtype=torch.int16),
        "i8": torch.tensor([[-128, 127], [0, 1]], dtype=torch.int8),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)


def _assert_bitwise(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert torch.equal(_bits(actual), _bits(expected))


@pytest.fixture
def single_file(tmp_path: Path) -> Path:
    path = tmp_path / "weights.safetensors"
    save_file(_tensors(), path, metadata={"format": "pt", "note": "single"})
    return path


def _write_sharded(directory: Path, tensors: dict[str, torch.Tensor], shards: list[list[str]]) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    for i, names in enumerate(shards, 1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: tensors[n] for n in names}, directory / file, metadata={"format": "pt", f"shard{i}": "yes"})
        weight_map.update(dict.fromkeys(names, file))
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return weight_map


def test_single_file_reads_bitwise_like_load_file(single_file: Path) -> None:
    expected = load_file(single_file)
    with open_checkpoint(single_file) as checkpoint:
        assert isinstance(checkpoint, SafetensorsCheckpoint)
        assert checkpoint.source == str(single_file)
        assert set(checkpoint.tensors()) == set(expected)
        for name, tensor in expected.items():
            assert checkpoint.info(name) == TensorInfo(name, tuple(tensor.shape), tensor.dtype)
            _assert_bitwise(checkpoint.read(name), tensor)
        assert checkpoint.config == {}  # no config.json beside it
        assert checkpoint.metadata == {"format": "pt", "note": "single"}


def test_names_shapes_and_dtypes_come_from_the_header_alone(single_file: Path, tmp_path: Path) -> None:
    """A file cut right after its header (no tensor bytes at all) still lists every tensor."""
    header_size = struct.unpack("<Q", single_file.read_bytes()[:8])[0]
    header_only = tmp_path / "header_only.safetensors"
    # the header, then a hole of zeros where the data was: names and shapes must come from the header
    header_only.write_bytes(single_file.read_bytes()[: 8 + header_size])
    with open(header_only, "r+b") as f:
        f.truncate(single_file.stat().st_size)
    with open_checkpoint(header_only) as checkpoint:
        infos = checkpoint.tensors()
        assert infos == {n: TensorInfo(n, tuple(t.shape), t.dtype) for n, t in _tensors().items()}
        assert infos["bf16"].nbytes == 42 and infos["f64"].numel == 12
    with open_checkpoint(single_file) as checkpoint, pytest.raises(KeyError, match="no tensor 'missing'"):
        checkpoint.info("missing")


def test_tensors_come_in_storage_order(single_file: Path) -> None:
    header = json.loads(single_file.read_bytes()[8 : 8 + struct.unpack("<Q", single_file.read_bytes()[:8])[0]])
    header.pop("__metadata__")
    by_offset = sorted(header, key=lambda n: header[n]["data_offsets"][0])
    with open_checkpoint(single_file) as checkpoint:
        assert list(checkpoint.tensors()) == by_offset


def test_sharded_directory_with_index_and_config(tmp_path: Path) -> None:
    tensors = _tensors()
    names = list(tensors)
    model = tmp_path / "model"
    _write_sharded(model, tensors, [names[:5], names[5:9], names[9:]])
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 2}))
    with open_checkpoint(model) as checkpoint:
        assert isinstance(checkpoint, SafetensorsCheckpoint)
        assert len(checkpoint.files) == 3
        assert set(checkpoint.tensors()) == set(tensors)
        for name, tensor in tensors.items():
            _assert_bitwise(checkpoint.read(name), tensor)
        assert checkpoint.config == {"model_type": "llama", "num_hidden_layers": 2}
        assert checkpoint.model_type == "llama"
        assert {"shard1", "shard2", "shard3"} <= set(checkpoint.metadata)


def test_single_file_inside_a_model_directory_gets_its_config(tmp_path: Path) -> None:
    save_file({"w": torch.ones(2)}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with open_checkpoint(tmp_path / "model.safetensors") as checkpoint:
        assert checkpoint.config == {"model_type": "gpt2"}
    with open_checkpoint(tmp_path) as checkpoint:
        assert checkpoint.config == {"model_type": "gpt2"}


def test_directory_without_index_reads_every_safetensors_file(tmp_path: Path) -> None:
    save_file({"a": torch.ones(2)}, tmp_path / "part-b.safetensors")
    save_file({"b": torch.zeros(3)}, tmp_path / "part-a.safetensors")
    with open_checkpoint(tmp_path) as checkpoint:
        assert set(checkpoint.tensors()) == {"a", "b"}
        assert checkpoint.read("a").equal(torch.ones(2)) and checkpoint.read("b").equal(torch.zeros(3))


@pytest.mark.parametrize(
    "rows",
    [slice(1, 3), slice(0, None), slice(None, 2), slice(-2, None), slice(2, 100), slice(3, 1), slice(6, 6)],
)
@pytest.mark.parametrize("name", ["f32", "bf16", "f16", "f64", "i32", "i8", "u8", "bool"])
def test_row_slices_equal_slices_of_the_whole_tensor(single_file: Path, name: str, rows: slice) -> None:
    whole = load_file(single_file)[name]
    with open_checkpoint(single_file) as checkpoint:
        _assert_bitwise(checkpoint.read(name, rows), whole[rows])


def test_row_slices_must_be_contiguous(single_file: Path) -> None:
    with open_checkpoint(single_file) as checkpoint, pytest.raises(ValueError, match="contiguous"):
        checkpoint.read("f32", slice(0, 6, 2))


def test_release_and_prefetch_keep_reads_right(single_file: Path) -> None:
    expected = load_file(single_file)
    with open_checkpoint(single_file) as checkpoint:
        for name in expected:
            checkpoint.release(name)  # before anything is mapped
        for name in expected:
            checkpoint.prefetch(name)
            before = checkpoint.read(name).clone()
            kept = checkpoint.read(name)
            checkpoint.release(name)
            _assert_bitwise(kept, expected[name])  # pages dropped by release come back from the file
            _assert_bitwise(checkpoint.read(name), before)
            checkpoint.prefetch(name)
            if expected[name].dim():
                _assert_bitwise(checkpoint.read(name, slice(0, 1)), expected[name][0:1])


def test_reads_after_close_map_the_file_again(single_file: Path) -> None:
    checkpoint = open_checkpoint(single_file)
    first = checkpoint.read("f32").clone()
    checkpoint.close()
    _assert_bitwise(checkpoint.read("f32"), first)
    checkpoint.close()


def test_tensors_read_before_close_stay_valid(single_file: Path) -> None:
    # In a subprocess: the failure mode is a segmentation fault.
    script = textwrap.dedent(
        f"""
        import torch
        from sfn.io import open_checkpoint
        with open_checkpoint({str(single_file)!r}) as checkpoint:
            kept = checkpoint.read("i32")
        print(kept.sum().item())
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == str(int(_tensors()["i32"].sum()))


def test_missing_shard_listed_in_index_is_named(tmp_path: Path) -> None:
    tensors = _tensors()
    names = list(tensors)
    weight_map = _write_sharded(tmp_path, tensors, [names[:6], names[6:]])
    missing = weight_map[names[-1]]
    (tmp_path / missing).unlink()
    with pytest.raises(SfnError, match=missing):
        open_checkpoint(tmp_path)


def test_directory_without_safetensors_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SfnError, match="holds no .safetensors files"):
        SafetensorsCheckpoint(tmp_path)


def _not_safetensors(kind: str) -> bytes:
    return {
        "empty": b"",
        "short": b"abc",
        "text": b"this is a README, not a model\n" * 3,
        "json": json.dumps({"weight_map": {}}).encode(),
        "zip": b"PK\x03\x04" + bytes(200),
        "huge header length": struct.pack("<Q", 2**40) + b"{}",
        "header not json": struct.pack("<Q", 4) + b"{{{{",
        "header a list": struct.pack("<Q", 2) + b"[]",
        "header entry not an object": struct.pack("<Q", 8) + b'{"t": 5}',
    }[kind]


@pytest.mark.parametrize(
    "kind",
    ["empty", "short", "text", "json", "zip", "huge header length", "header not json",
     "header a list", "header entry not an object"],
)
def test_non_safetensors_file_is_an_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(_not_safetensors(kind))
    with pytest.raises(SfnError, match="is not a safetensors file"):
        open_checkpoint(path)
    with pytest.raises(SfnError, match="is not a safetensors file"):
        open_checkpoint(tmp_path)


def test_truncated_file_is_an_error_naming_it(single_file: Path) -> None:
    single_file.write_bytes(single_file.read_bytes()[:-100])
    with pytest.raises(SfnError, match=single_file.name), open_checkpoint(single_file) as checkpoint:
        for name in checkpoint.tensors():
            checkpoint.read(name)


def test_unsupported_dtype_is_an_error_naming_tensor_and_dtype(tmp_path: Path) -> None:
    path = tmp_path / "c.safetensors"
    header = json.dumps({"z": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with pytest.raises(SfnError, match="'z' has unsupported dtype C64"):
        open_checkpoint(path)
