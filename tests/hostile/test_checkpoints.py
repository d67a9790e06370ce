"""Checkpoints whose header or index disagrees with the bytes are refused when opened, before any work."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hostile.hostile_inputs import tree_digest
from sfn.errors import SfnError
from sfn.io import open_checkpoint
from sfn.stethoscopes.surgery import merge


def raw_safetensors(path: Path, entries: dict[str, dict], data: bytes) -> Path:
    """A safetensors file with exactly this header and data (no checks: the point is to lie)."""
    text = json.dumps(entries).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def _entry(shape, begin: int, end: int, dtype: str = "F32") -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


LIES = {
    # b overlaps a: both read bytes 8..16
    "overlap": ({"a": _entry([4], 0, 16), "b": _entry([4], 8, 24)}, 24, "overlaps"),
    # 8 unused bytes between a and b
    "gap": ({"a": _entry([2], 0, 8), "b": _entry([2], 16, 24)}, 24, "leaves a gap"),
    # the file goes on after the last tensor
    "trailing bytes": ({"a": _entry([2], 0, 8)}, 16, "truncated or corrupt"),
    # (-2) x (-3) = 6 elements: the product matches the bytes, the shape is nonsense
    "negative shape": ({"a": _entry([-2, -3], 0, 24)}, 24, "non-negative integer"),
    "float shape": ({"a": _entry([2.0, 3], 0, 24)}, 24, "non-negative integer"),
    "boolean shape": ({"a": _entry([True, 6], 0, 24)}, 24, "non-negative integer"),
    "float offsets": ({"a": _entry([6], 0.0, 24)}, 24, "data offsets"),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_a_header_that_lies_about_the_bytes_is_refused(tmp_path: Path, lie: str) -> None:
    entries, size, message = LIES[lie]
    path = raw_safetensors(tmp_path / "model.safetensors", entries, bytes(size))
    with pytest.raises(SfnError, match=message) as error:
        open_checkpoint(path)
    assert str(path) in str(error.value)


def _shard(base: Path, out: Path) -> dict[str, str]:
    """`base` as two shards with an index; returns its weight map."""
    shutil.copytree(base, out)
    tensors = load_file(out / "model.safetensors")
    (out / "model.safetensors").unlink()
    names = sorted(tensors)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for file, members in shards.items():
        save_file({n: tensors[n] for n in members}, out / file, metadata={"format": "pt"})
    weight_map = {n: file for file, members in shards.items() for n in members}
    _write_index(out, weight_map)
    return weight_map


def _write_index(directory: Path, weight_map: dict[str, str]) -> None:
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def _merge_refused(base: Path, donor: Path, tmp_path: Path, message: str) -> None:
    before = tree_digest(base)
    with pytest.raises(SfnError, match=message):
        merge(base, donor, "o", tmp_path / "out")
    assert not (tmp_path / "out").exists() and tree_digest(base) == before


def test_a_sharded_model_that_is_whole_opens(pair, tmp_path: Path) -> None:
    weight_map = _shard(pair[0], tmp_path / "sharded")
    with open_checkpoint(tmp_path / "sharded") as checkpoint:
        assert set(checkpoint.tensors()) == set(weight_map)


def test_index_naming_a_shard_without_the_tensor_is_refused(pair, tmp_path: Path) -> None:
    sharded = tmp_path / "sharded"
    weight_map = _shard(pair[0], sharded)
    name = next(n for n, f in weight_map.items() if f.startswith("model-00001"))
    weight_map[name] = "model-00002-of-00002.safetensors"
    _write_index(sharded, weight_map)
    _merge_refused(sharded, pair[1], tmp_path, f"puts tensor '{name}' in model-00002-of-00002.safetensors, which does not hold it")


def test_a_tensor_in_two_shards_is_refused(pair, tmp_path: Path) -> None:
    """delta and merge used to read different copies of it."""
    sharded = tmp_path / "sharded"
    weight_map = _shard(pair[0], sharded)
    second = sharded / "model-00002-of-00002.safetensors"
    tensors = load_file(second)
    name = next(n for n, f in weight_map.items() if f.startswith("model-00001"))
    tensors[name] = torch.zeros_like(load_file(sharded / "model-00001-of-00002.safetensors")[name])
    save_file(tensors, second, metadata={"format": "pt"})
    _merge_refused(sharded, pair[1], tmp_path, "is in several shards")


def test_an_index_pointing_outside_the_model_directory_is_refused(pair, tmp_path: Path) -> None:
    sharded = tmp_path / "models" / "sharded"
    weight_map = _shard(pair[0], sharded)
    stray = tmp_path / "models" / "stray"
    stray.mkdir()
    shutil.copy(sharded / "model-00002-of-00002.safetensors", stray / "model-00002-of-00002.safetensors")
    _write_index(sharded, {n: f if f.startswith("model-00001") else f"../stray/{f}" for n, f in weight_map.items()})
    _merge_refused(sharded, pair[1], tmp_path, "outside the model directory")


def test_an_index_that_is_not_json_is_an_error_not_a_traceback(pair, tmp_path: Path) -> None:
    sharded = tmp_path / "sharded"
    _shard(pair[0], sharded)
    (sharded / "model.safetensors.index.json").write_text('{"weight_map": {"model.embed')
    _merge_refused(sharded, pair[1], tmp_path, "index.json is not JSON")
