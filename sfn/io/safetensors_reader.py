"""Memory-mapped safetensors reading: one file, or shards listed in `model.safetensors.index.json`.

We parse the (tiny, JSON) header ourselves and map each file once (`sfn.io.mapping`), so a read is a
view into the page cache with no copy, `prefetch` reads ahead while we compute, and `release` drops a
finished tensor's pages: peak memory stays near one tensor, not the whole file.
"""

from __future__ import annotations

import json
import math
import struct
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sfn.errors import SfnError, SfnErrors
from sfn.io.checkpoint import Checkpoint, TensorInfo
from sfn.io.dtypes import BITS, ITEMSIZE, SAFETENSORS_CODES
from sfn.io.mapping import DONTNEED, WILLNEED, FileMapping

if TYPE_CHECKING:
    import torch

INDEX_NAME = "model.safetensors.index.json"


def read_safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The header dict of a safetensors file and the byte offset where tensor data starts."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SfnError(f"{path} is not a safetensors file (shorter than 8 bytes)")
        (size,) = struct.unpack("<Q", head)
        if size > 100 * 2**20:
            raise SfnError(f"{path} is not a safetensors file (header length {size} is implausible)")
        try:
            header = json.loads(f.read(size))
        except ValueError as exc:
            raise SfnError(f"{path} is not a safetensors file (its header is not JSON: {exc})") from None
    _check_header(path, header, 8 + size)
    return header, 8 + size


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_header(path: Path, header: Any, data_start: int) -> None:
    """The checks the safetensors library makes, before any read: every entry well formed, its byte
    range as long as dtype x shape, the ranges back to back from the first byte of the data to the
    last byte of the file (a cut-short download, overlapping tensors or a lying shape fail here)."""
    if not isinstance(header, dict):
        raise SfnError(f"{path} is not a safetensors file (its header is not a JSON object)")
    file_size = path.stat().st_size
    problems: list[str] = []
    ranges: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
            dtype, shape = entry["dtype"], entry["shape"]
        except (TypeError, KeyError, ValueError):
            problems.append(f"is not a safetensors file (bad header entry for {name!r}: it needs dtype, shape and two data_offsets)")
            continue
        if not isinstance(dtype, str) or dtype not in SAFETENSORS_CODES:
            problems.append(f"tensor {name!r} has unsupported dtype {dtype}")
            continue
        if not isinstance(shape, list) or not all(_is_count(dim) for dim in shape):
            problems.append(f"tensor {name!r} has shape {shape}: every dimension must be a non-negative integer")
            continue
        if not (_is_count(begin) and _is_count(end)) or begin > end:
            problems.append(f"tensor {name!r} has data offsets {[begin, end]}: they must be integers 0 <= begin <= end")
            continue
        if data_start + end > file_size:
            problems.append(
                f"is truncated or corrupt: tensor {name!r} ends at byte {data_start + end} but the file has "
                f"{file_size} bytes; download or write it again"
            )
            continue
        expected = math.prod(shape) * ITEMSIZE[SAFETENSORS_CODES[dtype]]
        if end - begin != expected:
            problems.append(f"tensor {name!r} has {end - begin} bytes but shape {shape} of {dtype} needs {expected}")
            continue
        ranges.append((begin, end, name))
    if not problems:
        position, previous = 0, None
        for begin, end, name in sorted(ranges):
            if begin != position:
                where = f"the end of {previous!r} (byte {position})" if previous else "the start of the data"
                how = "overlaps" if begin < position else "leaves a gap after"
                problems.append(f"tensor {name!r} starts at data byte {begin}: it {how} {where}")
            position, previous = max(position, end), name
        if data_start + position != file_size:
            problems.append(
                f"is truncated or corrupt: its tensors end at byte {data_start + position} but the file has "
                f"{file_size} bytes; download or write it again"
            )
    if len(problems) == 1:
        raise SfnError(f"{path}{':' if not problems[0].startswith('is ') else ''} {problems[0]}")
    if problems:
        raise SfnErrors(problems, f"{path} is not a valid safetensors file")


class _SafetensorsFile(FileMapping):
    """One safetensors file: its header now, its data mapped on first read."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.header, self.data_start = read_safetensors_header(path)
        self.metadata: dict[str, str] = self.header.pop("__metadata__", None) or {}

    def byte_range(self, name: str) -> tuple[int, int]:
        begin, end = self.header[name]["data_offsets"]
        return self.data_start + begin, self.data_start + end


def _read_index(index: Path) -> dict[str, str]:
    """The weight map of `model.safetensors.index.json`: tensor -> shard file inside the model directory."""
    try:
        document = json.loads(index.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SfnError(f"{index} is not JSON ({exc}); download or write it again") from None
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise SfnError(f"{index} has no weight_map of tensor names to shard files")
    # A shard outside the model directory would make sfn read (and copy) a file the model does not hold.
    outside = sorted({v for v in weight_map.values() if Path(v).is_absolute() or ".." in Path(v).parts})
    if outside:
        raise SfnError(f"{index} names shards outside the model directory: {', '.join(outside)}")
    return weight_map


def _check_shards(path: Path, files: list["_SafetensorsFile"], weight_map: dict[str, str] | None) -> None:
    """Each tensor in exactly one shard, and in the shard the index names (readers would disagree otherwise)."""
    problems: list[str] = []
    holders: dict[str, list[str]] = {}
    for mapped in files:
        shard = mapped.path.relative_to(path).as_posix() if path.is_dir() else mapped.path.name
        for name in mapped.header:
            holders.setdefault(name, []).append(shard)
    for name, shards in holders.items():
        if len(shards) > 1:
            problems.append(f"tensor {name!r} is in several shards ({', '.join(shards)}); keep one copy")
    if weight_map is not None:
        for name, shard in weight_map.items():
            if Path(shard).as_posix() not in holders.get(name, []):
                problems.append(f"the index puts tensor {name!r} in {shard}, which does not hold it")
        problems += [f"tensor {name!r} is in {shards[0]} but not in the index" for name, shards in holders.items() if name not in weight_map]
    if problems:
        raise SfnErrors(problems, f"{path}: the shards and {INDEX_NAME} disagree")


class SafetensorsCheckpoint(Checkpoint):
    """A local Hugging Face model directory, or a single `.safetensors` file."""

    def __init__(self, path: str | Path, source: str | None = None):
        path = Path(path)
        self.source = source or str(path)
        self.directory = path if path.is_dir() else path.parent
        weight_map = _read_index(path / INDEX_NAME) if path.is_dir() and (path / INDEX_NAME).is_file() else None
        self.files = [_SafetensorsFile(p) for p in self._shard_paths(path, weight_map)]
        self._file_of: dict[str, _SafetensorsFile] = {}
        self._infos: dict[str, TensorInfo] = {}
        _check_shards(path, self.files, weight_map)
        for mapped in self.files:
            entries = sorted(mapped.header.items(), key=lambda item: item[1]["data_offsets"][0])
            for name, entry in entries:
                self._infos[name] = TensorInfo(name, tuple(entry["shape"]), SAFETENSORS_CODES[entry["dtype"]])
                self._file_of[name] = mapped
        self.config = self._load_config()

    @staticmethod
    def _shard_paths(path: Path, weight_map: dict[str, str] | None) -> list[Path]:
        if path.is_file():
            return [path]
        if weight_map is not None:
            index = path / INDEX_NAME
            names = sorted(set(weight_map.values()))
            missing = [n for n in names if not (path / n).is_file()]
            if missing:
                raise SfnError(f"{index} lists shards that are not there: {', '.join(missing)}")
            return [path / n for n in names]
        single = path / "model.safetensors"
        if single.is_file():
            return [single]
        candidates = sorted(path.glob("*.safetensors"))
        if candidates:
            return candidates
        raise SfnError(f"{path} holds no .safetensors files")

    def _load_config(self) -> dict[str, Any]:
        config_path = self.directory / "config.json"
        if config_path.is_file():
            return json.loads(config_path.read_text())
        return {}

    @property
    def metadata(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for mapped in self.files:
            merged.update(mapped.metadata)
        return merged

    def tensors(self) -> dict[str, TensorInfo]:
        return self._infos

    def read(self, name: str, rows: slice | None = None) -> "torch.Tensor":
        import torch

        mapped, begin, shape = self._locate(name, rows)
        dtype = self.info(name).dtype
        if math.prod(shape) == 0:
            return torch.empty(shape, dtype=dtype)
        with warnings.catch_warnings():
            # The mapping is read-only on purpose; callers copy before writing.
            warnings.simplefilter("ignore", UserWarning)
            return torch.frombuffer(mapped.mm, dtype=dtype, count=math.prod(shape), offset=begin).view(shape)

    def read_bits(self, name: str, rows: slice | None = None) -> np.ndarray:
        """A read-only view of the mapped bytes (no copy, no torch)."""
        mapped, begin, shape = self._locate(name, rows)
        bits = BITS[self.info(name).itemsize]
        if math.prod(shape) == 0:
            return np.empty(shape, dtype=bits)
        return np.frombuffer(mapped.mm, dtype=bits, count=math.prod(shape), offset=begin).reshape(shape)

    def _locate(self, name: str, rows: slice | None) -> tuple[_SafetensorsFile, int, list[int]]:
        """(file, first byte, shape) of tensor `name` or of its rows `rows`."""
        info = self.info(name)
        mapped = self._file_of[name]
        begin, _ = mapped.byte_range(name)
        shape = list(info.shape)
        if rows is not None and shape:
            start, stop, step = rows.indices(shape[0])
            if step != 1:
                raise ValueError("row slices must be contiguous")
            begin += start * math.prod(shape[1:]) * info.itemsize
            shape[0] = max(stop - start, 0)
        return mapped, begin, shape

    def prefetch(self, name: str) -> None:
        self._file_of[name].advise(*self._file_of[name].byte_range(name), WILLNEED)

    def release(self, name: str) -> None:
        self._file_of[name].advise(*self._file_of[name].byte_range(name), DONTNEED)

    def close(self) -> None:
        for mapped in self.files:
            mapped.close()
