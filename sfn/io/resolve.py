"""`open_checkpoint`: turn what a user typed (a path, a file, a hub id) into a lazy `Checkpoint`."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sfn.errors import SfnError
from sfn.io.checkpoint import Checkpoint
from sfn.io.pickle_reader import PICKLE_REFUSAL, PICKLE_SUFFIXES, PickleCheckpoint, pickle_files
from sfn.io.safetensors_reader import SafetensorsCheckpoint

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?")
# What a model directory needs for analysis and for writing a loadable copy; never the pickles.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]


def open_checkpoint(source: str | os.PathLike, *, allow_pickle: bool = False) -> Checkpoint:
    """Open a model for lazy reading.

    `source` is a Hugging Face model directory (safetensors, sharded or not), a `.safetensors` or
    `.gguf` file, a directory holding one `.gguf`, or a hub id (`org/name` or `org/name@revision`)
    resolved from the local Hugging Face cache, downloading only when the hub is reachable.
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
    """A local snapshot directory for `org/name[@revision]`: the cache first, then the hub if reachable."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    repo_id, _, revision = hub_id.partition("@")
    kwargs = dict(repo_id=repo_id, revision=revision or None, allow_patterns=HUB_PATTERNS)
    try:
        return Path(snapshot_download(local_files_only=True, **kwargs))
    except Exception:  # noqa: BLE001 - any cache miss falls through to the network
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    reason = "HF_HUB_OFFLINE is set"
    if not offline:
        try:
            return Path(snapshot_download(**kwargs))
        except Exception as exc:  # noqa: BLE001 - reported below with the id
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    raise SfnError(
        f"model {hub_id!r} is not in the local Hugging Face cache ({HF_HUB_CACHE}) and could not be "
        f"downloaded ({reason}). Download it where the hub is reachable "
        f"(`hf download {repo_id}{' --revision ' + revision if revision else ''}`), or pass a local directory."
    )
