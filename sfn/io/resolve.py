"""`open_checkpoint`: turn what a user typed (a path, a file, a hub id) into a lazy `Checkpoint`."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from sfn.errors import SfnError
from sfn.io.checkpoint import Checkpoint
from sfn.io.pickle_reader import PICKLE_REFUSAL, PICKLE_SUFFIXES, PickleCheckpoint, pickle_files
from sfn.io.safetensors_reader import SafetensorsCheckpoint

# `org/name`, optionally a `.gguf` file inside the repository, optionally `@revision`:
# `org/name`, `org/name@v1`, `org/name/model-Q8_0.gguf`, `org/name/model-Q8_0.gguf@main`.
HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:/(?P<file>[^@]+\.gguf))?(?:@(?P<revision>[\w./-]+))?")
# What a model directory needs besides its weights, at the repository's top level only: `original/`
# and other sub-folders hold copies in other formats that transformers never reads.
METADATA_PATTERNS = ["*.json", "*.model", "*.txt", "*.jinja", "tokenizer*"]
TOP_LEVEL_ONLY = ["*/*"]
SINGLE_WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"

def open_checkpoint(source: str | os.PathLike, *, allow_pickle: bool = False) -> Checkpoint:
    """Open a model for lazy reading.

    `source` is a Hugging Face model directory (safetensors, sharded or not), a `.safetensors` or
    `.gguf` file, a directory holding one `.gguf`, or a hub id (`org/name`, `org/name@revision`,
    `org/name/FILE.gguf`) downloaded into the Hugging Face cache, or read from it offline.
    Pickled checkpoints are refused unless `allow_pickle` is set.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise SfnError(
            f"open_checkpoint opens a path or a hub id, not a {type(source).__name__}; every sfn function that "
            "takes a model also takes a loaded one (sfn.io.sources.opened reads one as a Checkpoint)"
        )
    text = str(source)
    path = Path(text).expanduser()
    if path.exists():
        return _open_path(path, text, allow_pickle)
    if HUB_ID.fullmatch(text) and not text.startswith((".", "/")):
        return _open_path(resolve_hub_id(text), text, allow_pickle)
    raise SfnError(f"{text!r} is neither an existing file or directory nor a hub id like 'org/name'")


def _open_path(path: Path, source: str, allow_pickle: bool) -> Checkpoint:
    if path.is_file():
        if path.suffix == ".safetensors":
            return SafetensorsCheckpoint(path, source)
        if path.suffix == ".gguf":
            from sfn.io.gguf_reader import GGUFCheckpoint

            return GGUFCheckpoint(path, source)
        if path.suffix in PICKLE_SUFFIXES:
            return _open_pickle(path, source, allow_pickle)
        raise SfnError(f"{path}: unknown checkpoint format {path.suffix!r} (expected .safetensors, .gguf or a directory)")
    if any(path.glob("*.safetensors")):
        return SafetensorsCheckpoint(path, source)
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        from sfn.io.gguf_reader import GGUFCheckpoint

        return GGUFCheckpoint(ggufs[0], source)
    if len(ggufs) > 1:
        raise SfnError(f"{path} holds {len(ggufs)} .gguf files; pass the one you mean: {', '.join(p.name for p in ggufs)}")
    if pickle_files(path):
        return _open_pickle(path, source, allow_pickle)
    raise SfnError(f"{path} holds no model weights (.safetensors, .gguf, or pickled .bin)")


def _open_pickle(path: Path, source: str, allow_pickle: bool) -> Checkpoint:
    if not allow_pickle:
        raise SfnError(PICKLE_REFUSAL.format(path=path))
    return PickleCheckpoint(path, source)


def resolve_hub_id(hub_id: str) -> Path:
    """A local snapshot directory (or `.gguf` file) for a hub id, downloading what the cache lacks.

    Each file comes through `snapshot_download`, which downloads what is missing and, offline or with
    the hub unreachable, returns what the cache holds. Only the metadata and the weights transformers
    loads are fetched: the shards the index names, else `model.safetensors`, else the repository's one
    `.gguf` file (`org/name/FILE.gguf` picks one of several); never `consolidated.safetensors`,
    `original/` copies or pickles. A snapshot that still lacks a weight file is an error naming it.
    """
    match = HUB_ID.fullmatch(hub_id)
    if match is None:
        raise SfnError(f"{hub_id!r} is not a hub id like 'org/name', 'org/name@revision' or 'org/name/FILE.gguf'")
    repo_id, gguf_file, revision = match["repo"], match["file"], match["revision"]
    download = _download_hint(repo_id, revision)
    if gguf_file:
        snapshot = _snapshot(hub_id, repo_id, revision, [gguf_file], download)
        _require(hub_id, snapshot, [gguf_file], download + f" {gguf_file}")
        return snapshot / gguf_file
    snapshot = _snapshot(hub_id, repo_id, revision, METADATA_PATTERNS, download)
    if (snapshot / INDEX).is_file():
        shards = sorted(set(json.loads((snapshot / INDEX).read_text())["weight_map"].values()))
        snapshot = _snapshot(hub_id, repo_id, revision, shards, download)
        _require(hub_id, snapshot, shards, download)
        return snapshot
    snapshot = _snapshot(hub_id, repo_id, revision, [SINGLE_WEIGHTS], download)
    if (snapshot / SINGLE_WEIGHTS).is_file():
        return snapshot
    ggufs = _gguf_files(repo_id, revision, snapshot)
    if len(ggufs) == 1:
        snapshot = _snapshot(hub_id, repo_id, revision, ggufs, download)
        _require(hub_id, snapshot, ggufs, download + f" {ggufs[0]}")
        return snapshot / ggufs[0]
    if len(ggufs) > 1:
        raise SfnError(
            f"{hub_id!r} holds {len(ggufs)} .gguf files; name the one you mean as '{repo_id}/FILE.gguf': " + ", ".join(ggufs)
        )
    raise SfnError(
        f"{hub_id!r}: neither the hub nor the local cache ({_cache()}) has its weights ({INDEX}, "
        f"{SINGLE_WEIGHTS} or a .gguf file){_offline_note()}. Download it where the hub is reachable "
        f"(`{download}`), or pass a local directory."
    )


def _snapshot(hub_id: str, repo_id: str, revision: str | None, patterns: list[str], download: str) -> Path:
    import huggingface_hub

    try:
        return Path(
            huggingface_hub.snapshot_download(
                repo_id=repo_id, revision=revision, allow_patterns=patterns, ignore_patterns=TOP_LEVEL_ONLY
            )
        )
    except Exception as error:  # noqa: BLE001 - not cached and not downloadable: reported with the id
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        raise SfnError(
            f"model {hub_id!r} is not in the local Hugging Face cache ({_cache()}) and could not be "
            f"downloaded ({reason}){_offline_note()}. Download it where the hub is reachable (`{download}`), "
            "or pass a local directory."
        ) from None


def _require(hub_id: str, snapshot: Path, files: list[str], download: str) -> None:
    missing = [name for name in files if not (snapshot / name).is_file()]
    if missing:
        raise SfnError(
            f"model {hub_id!r}: the local cache ({snapshot}) lacks {', '.join(missing)} and the hub did not provide "
            f"{'it' if len(missing) == 1 else 'them'}{_offline_note()}. Download it where the hub is reachable "
            f"(`{download}`), or pass a local directory."
        )


def _gguf_files(repo_id: str, revision: str | None, snapshot: Path) -> list[str]:
    """Top-level `.gguf` files of the repository, from the hub, else from the cached snapshot."""
    import huggingface_hub

    try:
        names = huggingface_hub.HfApi().list_repo_files(repo_id, revision=revision)
    except Exception:  # noqa: BLE001 - offline or unreachable: the cache is all there is
        names = [path.name for path in snapshot.glob("*.gguf")]
    return sorted(name for name in names if name.endswith(".gguf") and "/" not in name)


def _download_hint(repo_id: str, revision: str | None) -> str:
    return f"hf download {repo_id}{' --revision ' + revision if revision else ''}"


def _cache() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return str(HF_HUB_CACHE)


def _offline_note() -> str:
    from huggingface_hub import constants

    return "; HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else ""
