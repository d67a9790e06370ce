"""Hub ids resolved against a fake hub: what is downloaded, what the cache serves offline, GGUF repos."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from huggingface_hub.utils import filter_repo_objects
from safetensors.torch import save

import sfn.io.gguf_reader
from sfn.errors import SfnError
from sfn.io import open_checkpoint
from sfn.io.load_model import resolve_model_path
from sfn.io.resolve import resolve_hub_id

REPO = "sfn-test-org/sharded"


class FakeHub:
    """A remote repository (file name -> bytes) and a cache directory, behind huggingface_hub's calls.

    `snapshot_download` copies the matching files the cache lacks (online) or returns the cached
    snapshot as it is, however partial (offline), as the real one does.
    """

    def __init__(self, cache: Path, files: dict[str, bytes]):
        self.cache, self.files, self.online = cache, files, True
        self.downloaded: list[str] = []

    def snapshot(self, revision: str | None) -> Path:
        return self.cache / (revision or "main")

    def snapshot_download(self, repo_id, *, revision=None, allow_patterns=None, ignore_patterns=None, **kwargs):
        snapshot = self.snapshot(revision)
        if not self.online or kwargs.get("local_files_only"):
            if not snapshot.is_dir():
                raise LocalEntryNotFoundError(f"{repo_id} is not cached")
            return str(snapshot)
        for name in filter_repo_objects(sorted(self.files), allow_patterns=allow_patterns, ignore_patterns=ignore_patterns):
            target = snapshot / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.files[name])
                self.downloaded.append(name)
        snapshot.mkdir(parents=True, exist_ok=True)
        return str(snapshot)

    def cache_file(self, name: str, revision: str | None = None) -> None:
        target = self.snapshot(revision) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.files[name])

    def list_repo_files(self, repo_id, revision=None):
        if not self.online:
            raise ConnectionError("hub unreachable")
        return sorted(self.files)


def _weights(value: float) -> bytes:
    return save({f"w{value:g}": torch.full((2,), value)})


def _sharded_repo() -> dict[str, bytes]:
    index = {"metadata": {}, "weight_map": {"w1": "model-00001-of-00002.safetensors", "w2": "model-00002-of-00002.safetensors"}}
    return {
        "config.json": json.dumps({"model_type": "llama"}).encode(),
        "tokenizer.json": b"{}",
        "README.md": b"# card",
        "model.safetensors.index.json": json.dumps(index).encode(),
        "model-00001-of-00002.safetensors": _weights(1),
        "model-00002-of-00002.safetensors": _weights(2),
        "consolidated.safetensors": _weights(3),  # Mistral-style copy transformers never reads
        "original/params.json": b"{}",
        "original/consolidated.00.pth": b"pickle",
        "pytorch_model.bin": b"pickle",
    }


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def make(files: dict[str, bytes]) -> FakeHub:
        hub = FakeHub(tmp_path / "cache", files)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
        monkeypatch.setattr(huggingface_hub, "HfApi", lambda: hub)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        monkeypatch.chdir(tmp_path)
        return hub

    return make


@pytest.fixture
def fake_gguf(monkeypatch: pytest.MonkeyPatch):
    class FakeGGUF:
        def __init__(self, path, source=None):
            self.path, self.source = Path(path), source

    monkeypatch.setattr(sfn.io.gguf_reader, "GGUFCheckpoint", FakeGGUF)
    return FakeGGUF


def test_partial_cache_gets_the_missing_weights_downloaded(fake_hub) -> None:
    hub = fake_hub(_sharded_repo())
    hub.cache_file("config.json")  # what AutoConfig.from_pretrained leaves in the cache
    with open_checkpoint(REPO) as checkpoint:
        assert checkpoint.read("w2").equal(torch.full((2,), 2.0))
    assert "config.json" not in hub.downloaded and "model-00002-of-00002.safetensors" in hub.downloaded


def test_only_the_weights_the_index_names_are_downloaded(fake_hub) -> None:
    hub = fake_hub(_sharded_repo())
    snapshot = resolve_hub_id(REPO)
    assert sorted(hub.downloaded) == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
    ]
    assert not (snapshot / "consolidated.safetensors").exists() and not (snapshot / "original").exists()


def test_offline_the_full_cache_opens_and_a_partial_one_names_what_is_missing(fake_hub) -> None:
    hub = fake_hub(_sharded_repo())
    resolve_hub_id(REPO)
    hub.online = False
    assert resolve_hub_id(REPO) == hub.snapshot(None)
    (hub.snapshot(None) / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(SfnError, match="lacks model-00002-of-00002.safetensors") as excinfo:
        resolve_hub_id(REPO)
    assert f"hf download {REPO}" in str(excinfo.value)


def test_single_file_model_and_revision(fake_hub) -> None:
    hub = fake_hub({"config.json": b"{}", "model.safetensors": _weights(5), "consolidated.safetensors": _weights(6)})
    assert resolve_hub_id(f"{REPO}@v1") == hub.snapshot("v1")
    assert sorted(hub.downloaded) == ["config.json", "model.safetensors"]


def test_gguf_repository_with_one_file_resolves_to_it(fake_hub, fake_gguf) -> None:
    hub = fake_hub({"README.md": b"# card", "tiny-Q8_0.gguf": b"GGUF"})
    checkpoint = open_checkpoint(REPO)
    assert isinstance(checkpoint, fake_gguf) and checkpoint.path == hub.snapshot(None) / "tiny-Q8_0.gguf"
    assert resolve_model_path(REPO) == (hub.snapshot(None), "tiny-Q8_0.gguf")


def test_gguf_repository_with_several_files_takes_the_named_one(fake_hub, fake_gguf) -> None:
    hub = fake_hub({"a-Q4_K_M.gguf": b"GGUF4", "a-Q8_0.gguf": b"GGUF8", "sub/a-f16.gguf": b"GGUF16"})
    with pytest.raises(SfnError, match="holds 2 .gguf files") as excinfo:
        resolve_hub_id(REPO)
    assert "a-Q4_K_M.gguf, a-Q8_0.gguf" in str(excinfo.value) and f"'{REPO}/FILE.gguf'" in str(excinfo.value)
    assert hub.downloaded == []  # nothing fetched before the choice is made
    checkpoint = open_checkpoint(f"{REPO}/a-Q8_0.gguf@main")
    assert checkpoint.path == hub.snapshot("main") / "a-Q8_0.gguf" and hub.downloaded == ["a-Q8_0.gguf"]
    assert resolve_model_path(f"{REPO}/a-Q8_0.gguf") == (hub.snapshot(None), "a-Q8_0.gguf")


def test_repository_without_weights_is_an_error(fake_hub) -> None:
    fake_hub({"README.md": b"# card", "pytorch_model.bin": b"pickle"})
    with pytest.raises(SfnError, match="has its weights"):
        resolve_hub_id(REPO)
