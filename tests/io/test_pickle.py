"""Pickled PyTorch checkpoints: refused unless allowed, then loaded without running code."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import torch

from sfn.errors import SfnError
from sfn.io import open_checkpoint
from sfn.io.pickle_reader import PickleCheckpoint


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "model.embed_tokens.weight": torch.randn(8, 4, generator=g),
        "model.layers.0.self_attn.q_proj.weight": torch.randn(4, 4, generator=g).to(torch.bfloat16),
        "model.norm.weight": torch.randn(4, generator=g).to(torch.float16),
        "counter": torch.arange(3),
    }


def _model_dir(directory: Path, state: dict[str, torch.Tensor] | None = None, **save_kwargs) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(state or _state(), directory / "pytorch_model.bin", **save_kwargs)
    (directory / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return directory


def _assert_same(checkpoint, state: dict[str, torch.Tensor]) -> None:
    assert set(checkpoint.tensors()) == set(state)
    for name, tensor in state.items():
        info = checkpoint.info(name)
        assert (info.shape, info.dtype) == (tuple(tensor.shape), tensor.dtype)
        read = checkpoint.read(name)
        assert read.dtype == tensor.dtype and torch.equal(read, tensor)


@pytest.mark.parametrize("target", ["directory", "file"])
def test_pickle_is_refused_by_default_saying_why_and_how(tmp_path: Path, target: str) -> None:
    directory = _model_dir(tmp_path / "model")
    source = directory if target == "directory" else directory / "pytorch_model.bin"
    with pytest.raises(SfnError) as excinfo:
        open_checkpoint(source)
    message = str(excinfo.value)
    assert str(source) in message
    assert "arbitrary code" in message  # why
    assert "safetensors" in message and "--allow-pickle" in message and "allow_pickle=True" in message  # how


def test_allowed_pickle_directory_loads_values_and_config(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path / "model")
    with open_checkpoint(directory, allow_pickle=True) as checkpoint:
        assert isinstance(checkpoint, PickleCheckpoint)
        _assert_same(checkpoint, _state())
        assert checkpoint.config == {"model_type": "llama"}
        embed = "model.embed_tokens.weight"
        assert checkpoint.read(embed, slice(2, 5)).equal(_state()[embed][2:5])


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth"])
def test_allowed_pickle_file_loads(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"weights{suffix}"
    torch.save(_state(), path)
    with pytest.raises(SfnError, match="arbitrary code"):
        open_checkpoint(path)
    with open_checkpoint(path, allow_pickle=True) as checkpoint:
        _assert_same(checkpoint, _state())
        assert checkpoint.config == {}


def test_legacy_non_zip_pickle_loads(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path / "model", _use_new_zipfile_serialization=False)
    with open_checkpoint(directory, allow_pickle=True) as checkpoint:
        _assert_same(checkpoint, _state())


def test_training_checkpoint_with_state_dict_key_loads(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": _state(), "epoch": 3}, path)
    with open_checkpoint(path, allow_pickle=True) as checkpoint:
        _assert_same(checkpoint, _state())


def test_pickle_that_is_not_a_state_dict_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "tensor.pt"
    torch.save(torch.ones(3), path)
    with pytest.raises(SfnError, match="does not hold a state dict"):
        open_checkpoint(path, allow_pickle=True)


def test_sharded_pickle_follows_its_index(tmp_path: Path) -> None:
    state = _state()
    names = list(state)
    torch.save({n: state[n] for n in names[:2]}, tmp_path / "pytorch_model-00001-of-00002.bin")
    torch.save({n: state[n] for n in names[2:]}, tmp_path / "pytorch_model-00002-of-00002.bin")
    weight_map = {n: f"pytorch_model-0000{1 if i < 2 else 2}-of-00002.bin" for i, n in enumerate(names)}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(SfnError, match="arbitrary code"):
        open_checkpoint(tmp_path)
    with open_checkpoint(tmp_path, allow_pickle=True) as checkpoint:
        _assert_same(checkpoint, state)


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_allowed_pickle_still_never_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.bin"
    torch.save({"w": torch.ones(2), "payload": _RunsCode(marker)}, path)
    with pytest.raises(Exception):  # noqa: B017 - which exception is the next test's concern
        open_checkpoint(path, allow_pickle=True)
    assert not marker.exists()


def test_pickle_with_objects_is_an_sfn_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "evil.bin"
    torch.save({"w": torch.ones(2), "payload": _RunsCode(tmp_path / "code-ran")}, path)
    with pytest.raises(SfnError, match="evil.bin"):
        open_checkpoint(path, allow_pickle=True)


def test_pickle_directory_reads_only_the_model_weights(tmp_path: Path) -> None:
    directory = _model_dir(tmp_path / "checkpoint-500")
    torch.save({"cpu": torch.ones(3, dtype=torch.uint8)}, directory / "rng_state.pth")
    torch.save(argparse.Namespace(learning_rate=1e-5), directory / "training_args.bin")
    torch.save({"state": {}, "param_groups": []}, directory / "optimizer.pt")
    with open_checkpoint(directory, allow_pickle=True) as checkpoint:
        _assert_same(checkpoint, _state())


def test_missing_pickle_shard_is_an_sfn_error_naming_it(tmp_path: Path) -> None:
    torch.save({"a": torch.ones(1)}, tmp_path / "pytorch_model-00001-of-00002.bin")
    weight_map = {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(SfnError, match="pytorch_model-00002-of-00002.bin"):
        open_checkpoint(tmp_path, allow_pickle=True)
