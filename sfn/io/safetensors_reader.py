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
from typing import Any

import torch

from sfn.errors import SfnError
from sfn.io.checkpoint import Checkpoint, TensorInfo
from sfn.io.mapping import DONTNEED, WILLNEED, FileMapping

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U64": torch.uint64,
    "U32": torch.uint32,
    "U16": torch.uint16,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}


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


def _check_header(path: Path, header: Any, data_start: int) -> None:
    """Every entry well formed and inside the file (a cut-short download fails here, not at read)."""
    if not isinstance(header, dict):
        raise SfnError(f"{path} is not a safetensors file (its header is not a JSON object)")
    file_size = path.stat().st_size
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
            dtype, shape = entry["dtype"], entry["shape"]
        except (TypeError, KeyError, ValueError):
            raise SfnError(f"{path} is not a safetensors file (bad header entry for {name!r})") from None
        if dtype not in SAFETENSORS_DTYPES:
            raise SfnError(f"{path}: tensor {name!r} has unsupported dtype {dtype}")
        if data_start + end > file_size or not 0 <= begin <= end:
            raise SfnError(
                f"{path} is truncated or corrupt: tensor {name!r} ends at byte {data_start + end} but the file has "
                f"{file_size} bytes; download or write it again"
            )
        expected = math.prod(shape) * SAFETENSORS_DTYPES[dtype].itemsize
        if end - begin != expected:
            raise SfnError(f"{path}: tensor {name!r} has {end - begin} bytes but shape {shape} of {dtype} needs {expected}")


class _SafetensorsFile(FileMapping):
    """One safetensors file: its header now, its data mapped on first read."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.header, self.data_start = read_safetensors_header(path)
        self.metadata: dict[str, str] = self.header.pop("__metadata__", None) or {}

    def byte_range(self, name: str) -> tuple[int, int]:
        begin, end = self.header[name]["data_offsets"]
        return self.data_start + begin, self.data_start + end


class SafetensorsCheckpoint(Checkpoint):
    """A local Hugging Face model directory, or a single `.safetensors` file."""

    def __init__(self, path: str | Path, source: str | None = None):
        path = Path(path)
        self.source = source or str(path)
        self.directory = path if path.is_dir() else path.parent
        self.files = [_SafetensorsFile(p) for p in self._shard_paths(path)]
        self._file_of: dict[str, _SafetensorsFile] = {}
        self._infos: dict[str, TensorInfo] = {}
        for mapped in self.files:
            entries = sorted(mapped.header.items(), key=lambda item: item[1]["data_offsets"][0])
            for name, entry in entries:
                self._infos[name] = TensorInfo(name, tuple(entry["shape"]), SAFETENSORS_DTYPES[entry["dtype"]])
                self._file_of[name] = mapped
        self.config = self._load_config()

    @staticmethod
    def _shard_paths(path: Path) -> list[Path]:
        if path.is_file():
            return [path]
        index = path / "model.safetensors.index.json"
        if index.is_file():
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
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

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        info = self.info(name)
        mapped = self._file_of[name]
        begin, _ = mapped.byte_range(name)
        shape = list(info.shape)
        row_elems = math.prod(shape[1:]) if shape else 1
        if rows is not None and shape:
            start, stop, step = rows.indices(shape[0])
            if step != 1:
                raise ValueError("row slices must be contiguous")
            begin += start * row_elems * info.dtype.itemsize
            shape[0] = max(stop - start, 0)
        count = math.prod(shape)
        if count == 0:
            return torch.empty(shape, dtype=info.dtype)
        with warnings.catch_warnings():
            # The mapping is read-only on purpose; callers copy before writing.
            warnings.simplefilter("ignore", UserWarning)
            flat = torch.frombuffer(mapped.mm, dtype=info.dtype, count=count, offset=begin)
        return flat.view(shape)

    def prefetch(self, name: str) -> None:
        self._file_of[name].advise(*self._file_of[name].byte_range(name), WILLNEED)

    def release(self, name: str) -> None:
        self._file_of[name].advise(*self._file_of[name].byte_range(name), DONTNEED)

    def close(self) -> None:
        for mapped in self.files:
            mapped.close()
