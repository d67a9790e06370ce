"""`open_checkpoint`: which reader a path gets, and hub ids resolved through the local cache only."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from safetensors.torch import save_file

import sfn.io.gguf_reader
from sfn.errors import SfnError
from sfn.io import open_checkpoint
from sfn.io.safetensors_reader import SafetensorsCheckpoint

REPO = "sfn-test-org/tiny-model"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class _FakeGGUF:
    """Stands in for GGUFCheckpoint: dispatch is tested here, GGUF reading in test_gguf.py."""

    def __init__(self, path, source=None):
        self.path, self.source = Path(path), source


@pytest.fixture
def fake_gguf(monkeypatch: pytest.MonkeyPatch) -> type[_FakeGGUF]:
    monkeypatch.setattr(sfn.io.gguf_reader, "GGUFCheckpoint", _FakeGGUF)
    return _FakeGGUF


def _safetensors_dir(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.arange(4.0)}, directory / "model.safetensors")
    (directory / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return directory


def test_directory_and_file_open_as_safetensors(tmp_path: Path) -> None:
    directory = _safetensors_dir(tmp_path / "model")
    for source in (directory, str(directory), directory / "model.safetensors"):
        with open_checkpoint(source) as checkpoint:
            assert isinstance(checkpoint, SafetensorsCheckpoint)
            assert checkpoint.source == str(source)
            assert checkpoint.read("w").equal(torch.arange(4.0))


def test_home_directory_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    _safetensors_dir(tmp_path / "models" / "tiny")
    with open_checkpoint("~/models/tiny") as checkpoint:
        assert isinstance(checkpoint, SafetensorsCheckpoint) and checkpoint.source == "~/models/tiny"


def test_safetensors_win_over_pickles_and_gguf_in_one_directory(tmp_path: Path, fake_gguf) -> None:
    directory = _safetensors_dir(tmp_path / "model")
    torch.save({"w": torch.zeros(4)}, directory / "pytorch_model.bin")
    (directory / "model.gguf").write_bytes(b"GGUF")
    with open_checkpoint(directory) as checkpoint:  # no pickle refusal: the pickle is not used
        assert isinstance(checkpoint, SafetensorsCheckpoint)
        assert checkpoint.read("w").equal(torch.arange(4.0))


def test_gguf_file_and_directory_with_one_gguf_go_to_the_gguf_reader(tmp_path: Path, fake_gguf) -> None:
    gguf = tmp_path / "model-Q8_0.gguf"
    gguf.write_bytes(b"GGUF")
    by_file = open_checkpoint(gguf)
    by_dir = open_checkpoint(tmp_path)
    assert isinstance(by_file, fake_gguf) and by_file.path == gguf and by_file.source == str(gguf)
    assert isinstance(by_dir, fake_gguf) and by_dir.path == gguf and by_dir.source == str(tmp_path)


def test_directory_with_several_gguf_files_asks_which(tmp_path: Path, fake_gguf) -> None:
    for name in ("a-Q4_K_M.gguf", "a-Q8_0.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    with pytest.raises(SfnError, match="2 .gguf files") as excinfo:
        open_checkpoint(tmp_path)
    assert "a-Q4_K_M.gguf" in str(excinfo.value) and "a-Q8_0.gguf" in str(excinfo.value)


def test_pickle_directory_goes_to_the_pickle_reader(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(2)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(SfnError, match="pickled"):
        open_checkpoint(tmp_path)
    with open_checkpoint(tmp_path, allow_pickle=True) as checkpoint:
        assert checkpoint.read("w").equal(torch.ones(2))


def test_unknown_file_format_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    path.write_bytes(b"\0" * 16)
    with pytest.raises(SfnError, match="unknown checkpoint format '.npz'"):
        open_checkpoint(path)


def test_directory_without_weights_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SfnError, match="holds no model weights"):
        open_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "source",
    ["/nonexistent-sfn/model", "./missing-model", "missing-model", "missing.safetensors", "a/b/c", "~/no-sfn-model"],
)
def test_missing_path_that_is_not_a_hub_id_is_an_error(source: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(SfnError, match="neither an existing file or directory nor a hub id") as excinfo:
        open_checkpoint(source)
    assert repr(source) in str(excinfo.value)


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache of our own, offline, and a working directory without `org/` folders."""
    home = tmp_path / "hf-home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads these once, at import
    monkeypatch.setattr(huggingface_hub.constants, "HF_HOME", str(home))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return cache


@pytest.fixture
def hub_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Records every snapshot_download call (and still makes it)."""
    calls: list[dict] = []
    real = huggingface_hub.snapshot_download

    def recording(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", recording)
    return calls


def _cache_model(cache: Path, repo: str, refs: tuple[str, ...] = ("main",)) -> Path:
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = _safetensors_dir(storage / "snapshots" / COMMIT)
    (storage / "refs").mkdir()
    for ref in refs:
        (storage / "refs" / ref).write_text(COMMIT)
    return snapshot


def test_hub_id_in_the_cache_opens_offline(hub_cache: Path, hub_calls: list[dict]) -> None:
    snapshot = _cache_model(hub_cache, REPO, refs=("main", "v1"))
    for hub_id in (REPO, f"{REPO}@v1", f"{REPO}@{COMMIT}"):
        with open_checkpoint(hub_id) as checkpoint:
            assert isinstance(checkpoint, SafetensorsCheckpoint)
            assert checkpoint.source == hub_id
            assert checkpoint.directory == snapshot
            assert checkpoint.config == {"model_type": "llama"}
    # metadata, then the weights: each call downloads what is missing or, offline, reads the cache
    assert [call["revision"] for call in hub_calls] == [None, None, "v1", "v1", COMMIT, COMMIT]
    assert all(call["repo_id"] == REPO for call in hub_calls)


@pytest.mark.parametrize("hub_id", [REPO, f"{REPO}@v2"])
def test_hub_id_not_in_the_cache_offline_is_an_error_naming_it(hub_cache: Path, hub_calls: list, hub_id: str) -> None:
    _cache_model(hub_cache, "sfn-test-org/other-model")
    if "@" in hub_id:
        _cache_model(hub_cache, REPO)  # cached, but not at that revision
    with pytest.raises(SfnError) as excinfo:
        open_checkpoint(hub_id)
    message = str(excinfo.value)
    assert repr(hub_id) in message
    assert "HF_HUB_OFFLINE" in message and str(hub_cache) in message
    assert f"hf download {REPO}" in message


def test_unreachable_hub_error_gives_the_reason(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls = []

    def unreachable(**kwargs):
        calls.append(kwargs)
        if kwargs.get("local_files_only"):
            raise LocalEntryNotFoundError("not cached")
        raise ConnectionError("hub unreachable\nsecond line")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(SfnError) as excinfo:
        open_checkpoint(REPO)
    message = str(excinfo.value)
    assert repr(REPO) in message and "ConnectionError: hub unreachable" in message and "second line" not in message
    assert len(calls) == 1 and not calls[0].get("local_files_only")  # one call: download, else the cache
