"""Lazy reading of a GGUF file (llama.cpp's format) as the tensors of a Hugging Face model.

Opening parses only the metadata and the tensor table. The config is what transformers itself parses
from the metadata for `from_pretrained(..., gguf_file=...)`; GGUF tensor names (`blk.0.attn_q.weight`)
become the Hugging Face names (`model.layers.0.self_attn.q_proj.weight`) through gguf's own name
tables, matched against the state dict of the model class built on the meta device. `read`
dequantizes one tensor (or a block of its rows) with gguf and applies the same per-tensor fix-up
transformers applies (llama's q/k row permutation, the gemma norm offset), so values equal a
transformers load of the same file exactly.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import gguf
import torch
from gguf import MODEL_ARCH_NAMES, GGMLQuantizationType, GGUFReader, get_tensor_name_map
from gguf import quants as gguf_quants
from transformers import CONFIG_MAPPING, AutoModelForCausalLM, PretrainedConfig
from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, LlamaTensorProcessor, TensorProcessor
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

try:
    from transformers.integrations.gguf import GGUF_ARCHS
except ImportError:  # transformers < 5.21 loads every GGUF architecture through the per-tensor tables below
    GGUF_ARCHS = {}

from sfn.errors import SfnError
from sfn.io.checkpoint import Checkpoint, TensorInfo
from sfn.io.mapping import DONTNEED, WILLNEED, FileMapping

# Architectures whose transformers fix-ups are not one tensor in, one tensor of the same shape out:
# gpt2 transposes, mamba reshapes, the MoE loaders merge experts' gate and up tensors. Their tensors
# keep GGUF names and are read as stored rather than under Hugging Face names with other values.
_WHOLE_MODEL_FIXUPS = frozenset({"gpt2", "mamba", "qwen2moe", "qwen3moe", "gpt-oss", "minimax-m2"})
# llama.cpp's llama converter interleaves the rotary halves of each head of these, nothing else.
_PERMUTED_QK = re.compile(r"\.attn_[qk]\.")
_BLOCK_INDEX = re.compile(r"^blk\.(\d+)\.")


@dataclass(frozen=True)
class _StoredTensor:
    """Where one tensor's bytes are and how gguf reads them."""

    gguf_name: str
    ggml_type: GGMLQuantizationType
    raw_dtype: np.dtype  # what the bytes are read as: uint8 blocks for quantized types
    raw_shape: tuple[int, ...]  # torch order; for blocks the last dimension counts bytes
    offset: int  # from the start of the file
    nbytes: int
    converted: bool  # under its Hugging Face name, so transformers' fix-up applies


class GGUFCheckpoint(Checkpoint):
    """One `.gguf` file, with Hugging Face names and float32 values."""

    def __init__(self, path: str | Path, source: str | None = None):
        self.path = Path(path)
        self.source = source or str(self.path)
        reader = _open_reader(self.path)
        field = reader.fields.get("general.architecture")
        self.architecture: str | None = field.contents() if field is not None else None
        raw_config, hf_config = _transformers_config(self.path, reader)
        self.config: dict[str, Any] = _plain_config(raw_config, hf_config)
        self._fixup = _tensor_processor(self.architecture, raw_config)
        hf_name_of = _hf_names([t.name for t in reader.tensors], self.architecture, hf_config)

        self._stored: dict[str, _StoredTensor] = {}
        self._infos: dict[str, TensorInfo] = {}
        for tensor in reader.tensors:
            name = hf_name_of.get(tensor.name, tensor.name)
            self._stored[name] = _StoredTensor(
                gguf_name=tensor.name,
                ggml_type=GGMLQuantizationType(tensor.tensor_type),
                raw_dtype=tensor.data.dtype,
                raw_shape=tuple(tensor.data.shape),
                offset=int(tensor.data_offset),
                nbytes=int(tensor.n_bytes),
                converted=tensor.name in hf_name_of,
            )
            # ggml lists dimensions fastest-moving first, torch the other way round
            shape = tuple(int(d) for d in reversed(tensor.shape))
            self._infos[name] = TensorInfo(name, shape, torch.float32)
        self._mapping = FileMapping(self.path)

    def tensors(self) -> dict[str, TensorInfo]:
        return self._infos

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        """Tensor `name` dequantized to float32 in Hugging Face orientation (or rows `rows` of it)."""
        info = self.info(name)
        stored = self._stored[name]
        if rows is not None:
            start, stop, step = rows.indices(info.shape[0])
            if step != 1:
                raise ValueError("row slices must be contiguous")
            if stop <= start:  # gguf cannot dequantize zero blocks
                return torch.empty((0, *info.shape[1:]), dtype=torch.float32)
            if self._rows_dequantize_alone(stored):
                return _float32_tensor(self._dequantize(stored, self._raw(stored)[start:stop]))
        values = self._dequantize(stored, self._raw(stored))
        if stored.converted and self._fixup is not None:
            values = self._fixup.process(weights=values, name=stored.gguf_name).weights
        tensor = _float32_tensor(values)
        return tensor if rows is None else tensor[start:stop]

    def _rows_dequantize_alone(self, stored: _StoredTensor) -> bool:
        """Whether some rows can be dequantized without the rest.

        Quantized blocks run along the last dimension, so rows are independent, unless the tensor
        is 1-D (one run of blocks) or a fix-up moves rows around (llama's q/k permutation).
        """
        if len(stored.raw_shape) < 2:
            return False
        if self._fixup is None or not stored.converted:
            return True
        return isinstance(self._fixup, LlamaTensorProcessor) and not _PERMUTED_QK.search(stored.gguf_name)

    def _raw(self, stored: _StoredTensor) -> np.ndarray:
        """The stored bytes of a tensor, as a read-only view of the mapped file."""
        count = int(np.prod(stored.raw_shape))
        flat = np.frombuffer(self._mapping.mm, dtype=stored.raw_dtype, count=count, offset=stored.offset)
        return flat.reshape(stored.raw_shape)

    def _dequantize(self, stored: _StoredTensor, raw: np.ndarray) -> np.ndarray:
        try:
            return gguf_quants.dequantize(raw, stored.ggml_type)
        except NotImplementedError:
            raise SfnError(
                f"{self.path}: tensor {stored.gguf_name!r} is stored as {stored.ggml_type.name}, which the "
                f"installed gguf package cannot dequantize; upgrade it (`pip install -U gguf`) or convert "
                f"the model again with a float or block-quantized type"
            ) from None

    def prefetch(self, name: str) -> None:
        stored = self._stored[name]
        self._mapping.advise(stored.offset, stored.offset + stored.nbytes, WILLNEED)

    def release(self, name: str) -> None:
        stored = self._stored[name]
        self._mapping.advise(stored.offset, stored.offset + stored.nbytes, DONTNEED)

    def close(self) -> None:
        self._mapping.close()


def _open_reader(path: Path) -> GGUFReader:
    try:
        return GGUFReader(path)
    except (ValueError, IndexError, KeyError, OSError) as exc:
        raise SfnError(
            f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc}); it is truncated or corrupt, "
            "or not GGUF at all: download or convert it again"
        ) from None


def _transformers_config(path: Path, reader: GGUFReader) -> tuple[dict[str, Any], PretrainedConfig | None]:
    """(the config dict transformers parses from the file's metadata, that config as an object).

    Both are empty/None when transformers does not know the architecture: the file still opens,
    with GGUF tensor names. transformers' legacy GGUF loader parses the whole file again with its own
    `GGUFReader` (10 s of a 13 s `sfn modules` on SmolLM2-135M); it is handed `reader`, already parsed.
    """
    try:
        with _reader_reused(path, reader):
            raw, _ = PretrainedConfig.get_config_dict(str(path.parent), gguf_file=path.name)
    except (ValueError, KeyError, OSError):
        return {}, None
    model_type = raw.get("model_type")
    if model_type not in CONFIG_MAPPING:
        return raw, None
    return raw, CONFIG_MAPPING[model_type].from_dict(raw)


@contextmanager
def _reader_reused(path: Path, reader: GGUFReader) -> Iterator[None]:
    """While inside, `gguf.GGUFReader(path)` returns `reader` (transformers imports the class from
    gguf at each call, so this is where it looks); any other file is parsed as usual."""
    original = gguf.GGUFReader
    resolved = path.resolve()

    def reuse(file: Any, *args: Any, **kwargs: Any) -> GGUFReader:
        if not args and not kwargs and Path(file).resolve() == resolved:
            return reader
        return original(file, *args, **kwargs)

    gguf.GGUFReader = reuse
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _plain_config(raw: dict[str, Any], hf_config: PretrainedConfig | None) -> dict[str, Any]:
    """A config.json-like dict, naming the class `from_pretrained` would build."""
    if hf_config is None:
        return dict(raw)
    config = hf_config.to_dict()
    causal_lm = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(hf_config.model_type)
    if causal_lm and not config.get("architectures"):
        config["architectures"] = [causal_lm]
    return config


def _tensor_processor(architecture: str | None, raw_config: dict[str, Any]) -> TensorProcessor | None:
    """transformers' per-tensor fix-up for this architecture, or None when tensors load as stored."""
    if architecture in _WHOLE_MODEL_FIXUPS or architecture not in TENSOR_PROCESSORS:
        return None
    # The raw dict, as transformers passes it: llama's permutation is skipped when head counts are absent.
    return TENSOR_PROCESSORS[architecture](config=raw_config)


def _hf_names(gguf_names: list[str], architecture: str | None, hf_config: PretrainedConfig | None) -> dict[str, str]:
    """GGUF name -> Hugging Face name, for each tensor transformers loads one-to-one under a new name."""
    # The newer loader (GGUF_ARCHS) renames and converts through its own rules, not these tables.
    if hf_config is None or architecture in _WHOLE_MODEL_FIXUPS or architecture in GGUF_ARCHS:
        return {}
    gguf_arch = next((arch for arch, arch_name in MODEL_ARCH_NAMES.items() if arch_name == architecture), None)
    model_keys = _model_state_dict_keys(hf_config) if gguf_arch is not None else None
    if model_keys is None:
        return {}
    blocks = 1 + max((int(m[1]) for n in gguf_names if (m := _BLOCK_INDEX.match(n))), default=-1)
    name_map = get_tensor_name_map(gguf_arch, blocks)

    # gguf's tables name modules by their full path, or for wrapped models (BloomForCausalLM around
    # BloomModel) by the path inside the wrapper. Full paths win, as they do in transformers.
    modules = [_module_and_leaf(key) for key in model_keys]
    hf_name_of: dict[str, str] = {}
    matched: set[str] = set()
    for depth in range(max((len(parts) for parts, _, _ in modules), default=0)):
        for parts, leaf, hf_name in modules:
            if hf_name in matched or depth >= len(parts):
                continue
            gguf_module = name_map.get_name(".".join(parts[depth:]))
            if gguf_module is not None:
                hf_name_of.setdefault(gguf_module + leaf, hf_name)
                matched.add(hf_name)

    mapped = {g: hf_name_of[g] for g in gguf_names if g in hf_name_of}
    # Two GGUF tensors landing on one Hugging Face tensor are merged by transformers, not renamed:
    # both keep their GGUF names.
    landings = Counter(mapped.values())
    return {g: h for g, h in mapped.items() if landings[h] == 1}


def _module_and_leaf(hf_name: str) -> tuple[list[str], str, str]:
    """(module path parts, ".weight"/".bias" or "", the name) of a state dict key."""
    module, leaf = hf_name, ""
    if hf_name.endswith((".weight", ".bias")):
        module, _, last = hf_name.rpartition(".")
        leaf = "." + last
    return module.split("."), leaf, hf_name


def _model_state_dict_keys(hf_config: PretrainedConfig) -> list[str] | None:
    """The state dict keys of the class `from_pretrained` builds, from a model on the meta device."""
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(hf_config)
    except (ValueError, KeyError, RuntimeError):  # not a causal LM, or one that cannot be built on meta
        return None
    return list(model.state_dict())


def _float32_tensor(values: np.ndarray) -> torch.Tensor:
    # A copy only where needed: a permuted view, or float32 bytes still in the read-only mapping.
    return torch.from_numpy(np.require(values, dtype=np.float32, requirements=["C_CONTIGUOUS", "WRITEABLE"]))
