"""Writing a model directory: streamed, sharded safetensors, atomically, with the Hugging Face extras.

`ShardedSafetensorsWriter` knows every tensor's name, shape and dtype before the first byte is
written, so each shard's header goes out first and the tensor bytes follow one tensor at a time: memory
stays near one tensor whatever the model's size. A tensor that comes unchanged from a safetensors file
is copied file to file by the kernel (`copy_file_range`), never entering our memory at all.

`atomic_output_dir` builds the output in a hidden sibling directory and renames it into place only when
everything is written, so a failure or Ctrl-C leaves no half-written model behind.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import socket
import struct
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sfn.errors import SfnError
from sfn.io.checkpoint import Checkpoint, TensorInfo
from sfn.io.dtypes import SAFETENSORS_CODES, torch_dtype
from sfn.io.full_disk import is_no_space, no_space_error
from sfn.io.guard import guard_output
from sfn.io.safetensors_reader import SafetensorsCheckpoint

log = logging.getLogger("sfn")
DTYPE_NAMES: dict[torch.dtype, str] = {torch_dtype(name): code for code, name in SAFETENSORS_CODES.items()}
# Kernel-side file-to-file copy is Linux-only (no `os.copy_file_range` on macOS or Windows): without
# it, and where the kernel refuses (across filesystems), tensors are copied through a bounded buffer.
copy_file_range = getattr(os, "copy_file_range", None)
COPY_BUFFER = 64 * 2**20
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
# Files a model directory needs besides weights and config to tokenize and chat like the original.
TOKENIZER_GLOBS = (
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "*.model",
    "chat_template.json",
    "chat_template.jinja",
)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def file_mode(directory: bool = False) -> int:
    """The mode `open()` (`mkdir()` for a directory) gives a new file: 0o666 (0o777) less the user's
    umask, read by setting it and back at once."""
    mask = os.umask(0o022)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def honour_umask(path: str | os.PathLike) -> Path:
    """Give a file written by a library that creates it 0600 (safetensors' `save_file`, through a
    temporary file) the mode every other output gets, so the user's umask decides who may read it."""
    path = Path(path)
    path.chmod(file_mode())
    return path


def parse_size(text: str | int) -> int:
    """'5GB', '500MiB', '2e9' or an int -> bytes."""
    if isinstance(text, int):
        return text
    number = text.strip().upper().rstrip()
    unit = number.lstrip("0123456789.E+-").strip()
    digits = number[: len(number) - len(unit)].strip() if unit else number
    try:
        value = float(digits) * _UNITS[unit]
    except (KeyError, ValueError):
        raise SfnError(f"bad size {text!r}: use forms like 5GB, 500MB or 2GiB") from None
    if value <= 0:
        raise SfnError(f"bad size {text!r}: it must be positive")
    return int(value)


@dataclass(frozen=True)
class RawBytes:
    """A tensor's bytes as they lie in a file, for a kernel-side copy."""

    path: Path
    offset: int
    length: int


def raw_bytes(checkpoint: Checkpoint, name: str) -> RawBytes | None:
    """Where `name`'s bytes lie in a safetensors file, or None for other checkpoint kinds."""
    if not isinstance(checkpoint, SafetensorsCheckpoint):
        return None
    for mapped in checkpoint.files:
        if name in mapped.header:
            begin, end = mapped.byte_range(name)
            return RawBytes(mapped.path, begin, end - begin)
    return None


def plan_shards(specs: Sequence[TensorInfo], max_shard_bytes: int) -> list[list[TensorInfo]]:
    """Tensors grouped into shards of at most `max_shard_bytes` (a larger tensor gets a shard of its own).

    Within a shard, wider dtypes come first so that every tensor starts at an offset aligned to its
    element size (safetensors allows no padding between tensors).
    """
    shards: list[list[TensorInfo]] = []
    size = 0
    for spec in specs:
        if not shards or (size + spec.nbytes > max_shard_bytes and size > 0):
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return [sorted(shard, key=lambda s: -s.dtype.itemsize) for shard in shards]


def shard_file_names(count: int) -> list[str]:
    if count == 1:
        return [SINGLE_NAME]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


class ShardedSafetensorsWriter:
    """Writes the tensors of `specs` into HF-named shards; feed them in `self.order` with `write`."""

    def __init__(self, directory: Path, specs: Sequence[TensorInfo], max_shard_bytes: int):
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError("tensor names must be unique")
        self.directory = Path(directory)
        self.shards = plan_shards(specs, max_shard_bytes)
        self.file_names = shard_file_names(len(self.shards))
        self.order: list[TensorInfo] = [spec for shard in self.shards for spec in shard]
        self._shard_of = [index for index, shard in enumerate(self.shards) for _ in shard]
        self._next = 0
        self._shard = -1
        self._fd: int | None = None
        self._position = 0

    def _expect(self, name: str) -> TensorInfo:
        if self._next >= len(self.order) or self.order[self._next].name != name:
            expected = self.order[self._next].name if self._next < len(self.order) else "nothing"
            raise ValueError(f"tensors must come in writer order: got {name!r}, expected {expected!r}")
        if self._shard_of[self._next] != self._shard:
            self._open_shard(self._shard_of[self._next])
        return self.order[self._next]

    def _open_shard(self, index: int) -> None:
        self._close_fd()
        self._shard = index
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for spec in self.shards[index]:
            header[spec.name] = {
                "dtype": DTYPE_NAMES[spec.dtype],
                "shape": list(spec.shape),
                "data_offsets": [offset, offset + spec.nbytes],
            }
            offset += spec.nbytes
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        path = self.directory / self.file_names[index]
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # less the umask
        self._position = 0
        self._pwrite(struct.pack("<Q", len(text)) + text)

    def _pwrite(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view:
            written = os.pwrite(self._fd, view, self._position)
            self._position += written
            view = view[written:]

    def write(self, name: str, tensor: torch.Tensor) -> None:
        spec = self._expect(name)
        if tuple(tensor.shape) != spec.shape or tensor.dtype != spec.dtype:
            raise ValueError(
                f"tensor {name!r} is {tuple(tensor.shape)} {tensor.dtype}, planned {spec.shape} {spec.dtype}"
            )
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        if flat.numel():
            self._pwrite(flat.view(torch.uint8).numpy())
        self._next += 1

    def write_raw(self, name: str, source: RawBytes) -> None:
        """Copy `name`'s bytes straight from another file (same dtype and shape as planned)."""
        spec = self._expect(name)
        if source.length != spec.nbytes:
            raise ValueError(f"tensor {name!r}: {source.length} bytes in {source.path}, planned {spec.nbytes}")
        copied = 0
        kernel = copy_file_range is not None
        with open(source.path, "rb") as f:
            while copied < source.length:
                remaining = source.length - copied
                step = None
                if kernel:
                    try:
                        step = copy_file_range(f.fileno(), self._fd, remaining, source.offset + copied, self._position)
                        self._position += step
                    except OSError:
                        kernel = False  # no kernel-side copy across these filesystems: buffered from here on
                if step is None:
                    f.seek(source.offset + copied)
                    block = f.read(min(remaining, COPY_BUFFER))
                    step = len(block)
                    self._pwrite(block)
                if step == 0:
                    raise SfnError(f"{source.path} ended before tensor {name!r} was read whole")
                copied += step
        self._next += 1

    def close(self) -> dict[str, str]:
        """Finish the last shard, write the index for a sharded model; returns the weight map."""
        if self._next != len(self.order):
            missing = [s.name for s in self.order[self._next :]]
            raise ValueError(f"{len(missing)} planned tensors were never written, first {missing[0]!r}")
        self._close_fd()
        weight_map = {spec.name: self.file_names[i] for i, shard in enumerate(self.shards) for spec in shard}
        if len(self.shards) > 1:
            index = {
                "metadata": {"total_size": sum(s.nbytes for s in self.order)},
                "weight_map": dict(sorted(weight_map.items())),
            }
            (self.directory / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
        return weight_map

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def abort(self) -> None:
        self._close_fd()


# Written into every partial output directory so that a later run can tell its own stale leftovers
# (from a SIGKILL or power loss) from anything else.
PARTIAL_MARKER = ".sfn-partial"


def check_output_dir(
    out: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
    overwrite_any: bool = False,
) -> Path:
    """The resolved output directory, after the output guard (`sfn.io.guard.guard_output`)."""
    return guard_output(out, inputs=inputs, overwrite=overwrite, overwrite_any=overwrite_any)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(partial: Path) -> bool:
    """Whether `partial` is sfn's leftover from a process of this machine that no longer runs."""
    if partial.is_dir():
        try:
            record = json.loads((partial / PARTIAL_MARKER).read_text())
            pid, host = int(record["pid"]), record["host"]
        except (OSError, ValueError, KeyError, TypeError):
            return False  # no marker: not ours to delete
    else:
        match = re.fullmatch(r"\..+\.sfn-(\d+)-(.+)\.partial", partial.name)
        if not match:
            return False
        pid, host = int(match[1]), match[2]
    return host == socket.gethostname() and not _alive(pid)


def remove_stale_partials(target: Path) -> list[Path]:
    """Remove what killed sfn runs left while writing `target` (they carry sfn's marker); warn about each."""
    removed = []
    for partial in sorted(target.parent.glob(f".{glob.escape(target.name)}.*.partial")):
        if _stale(partial):
            if partial.is_dir():
                shutil.rmtree(partial, ignore_errors=True)
            else:
                partial.unlink(missing_ok=True)
            log.warning("removed %s, left by an interrupted sfn run writing %s", partial, target)
            removed.append(partial)
    return removed


def partial_file(target: Path) -> Path:
    """A hidden sibling of the file `target` to write first; its name carries sfn's marker."""
    return target.with_name(f".{target.name}.sfn-{os.getpid()}-{socket.gethostname()}.partial")


@contextmanager
def atomic_output_dir(
    out: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    overwrite: bool = False,
    overwrite_any: bool = False,
) -> Iterator[Path]:
    """Yield a temporary sibling of `out` to write into; it becomes `out` only if the block succeeds.

    A full disk ends as one `SfnError` with nothing left behind.
    """
    target = check_output_dir(out, inputs=inputs, overwrite=overwrite, overwrite_any=overwrite_any)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        (work / PARTIAL_MARKER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    except OSError as error:
        if is_no_space(error):
            raise no_space_error(target) from None
        raise
    try:
        yield work
        (work / PARTIAL_MARKER).unlink()
    except BaseException as error:
        # Ctrl-C included: nothing half-written may stay behind.
        shutil.rmtree(work, ignore_errors=True)
        if is_no_space(error):
            raise no_space_error(target) from None
        raise
    work.chmod(file_mode(directory=True))  # mkdtemp made it 0700
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.rename(target, old / target.name)
        os.rename(work, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(work, target)


def copy_model_extras(
    base_dir: Path | None,
    out: Path,
    *,
    tokenizer_dir: Path | None = None,
    config: dict[str, Any] | None = None,
    copy_tokenizer: bool = True,
) -> list[str]:
    """Write `config` and copy the generation config from `base_dir` and (with `copy_tokenizer`)
    tokenizer files from `tokenizer_dir` (default `base_dir`); returns the names of the files written."""
    written = []
    if config is not None:
        (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        written.append("config.json")
    if base_dir is not None and (base_dir / "generation_config.json").is_file():
        shutil.copyfile(base_dir / "generation_config.json", out / "generation_config.json")
        written.append("generation_config.json")
    tokenizer_dir = tokenizer_dir or base_dir
    if tokenizer_dir is not None and copy_tokenizer:
        for pattern in TOKENIZER_GLOBS:
            for path in sorted(tokenizer_dir.glob(pattern)):
                if path.is_file() and not (out / path.name).exists():
                    shutil.copyfile(path, out / path.name)
                    written.append(path.name)
    return written


def write_gguf_tokenizer(gguf_file: Path, out: Path) -> None:
    """Save the tokenizer a GGUF file carries as ordinary tokenizer files in `out`, so the output
    loads with `from_pretrained(out)` (and lm-eval, vLLM) without the GGUF beside it."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name).save_pretrained(out)
