"""Writing a surgery's result as a complete Hugging Face model directory, streamed and atomic.

Every surgery (merge, destroy, plugin apply) describes its output as a list of `OutputTensor`s, each
of which produces its values only when the writer reaches it, so one tensor is in memory at a time.
Input files are hashed for the provenance record in a background thread while the tensors are written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCardData
from tqdm.auto import tqdm

from sfn import __version__
from sfn.errors import SfnError
from sfn.io import Checkpoint, TensorInfo
from sfn.io.resolve import HUB_ID
from sfn.io.writer import RawBytes, ShardedSafetensorsWriter, atomic_output_dir, copy_model_extras, parse_size, raw_bytes, write_gguf_tokenizer
from sfn.stethoscopes.surgery.choices import DEFAULT_SHARD_SIZE, DTYPE_NAMES
from sfn.io.sources import checkpoint_dir, weight_files

DTYPES = {name: getattr(torch, attribute) for name, attribute in DTYPE_NAMES.items()}
_SHA256 = re.compile(r"[0-9a-f]{64}")


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype.lower().removeprefix("torch.")]
    except KeyError:
        raise SfnError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}") from None


@dataclass(frozen=True)
class OutputTensor:
    """One tensor to write: its final name, shape and dtype, how to produce it, and what it reads."""

    info: TensorInfo
    produce: Callable[[], torch.Tensor | RawBytes]
    reads: tuple[tuple[Checkpoint, str], ...] = ()


def copied_tensor(checkpoint: Checkpoint, name: str, out: TensorInfo) -> OutputTensor:
    """`name` of `checkpoint` written unchanged as `out` (cast if `out` asks for another dtype)."""

    def produce() -> torch.Tensor | RawBytes:
        if checkpoint.info(name).dtype == out.dtype:
            raw = raw_bytes(checkpoint, name)
            if raw is not None:
                return raw
        return checkpoint.read(name).to(out.dtype)

    return OutputTensor(out, produce, ((checkpoint, name),))


def write_tensors(directory: Path, tensors: Sequence[OutputTensor], shard_size: int, description: str) -> dict[str, str]:
    """Stream `tensors` into safetensors shards under `directory`; returns the weight map."""
    writer = ShardedSafetensorsWriter(directory, [t.info for t in tensors], shard_size)
    by_name = {t.info.name: t for t in tensors}
    order = [by_name[spec.name] for spec in writer.order]
    try:
        for position, item in enumerate(tqdm(order, desc=description, unit="tensor", leave=False)):
            if position + 1 < len(order):
                for checkpoint, name in order[position + 1].reads:
                    checkpoint.prefetch(name)
            value = item.produce()
            if isinstance(value, RawBytes):
                writer.write_raw(item.info.name, value)
            else:
                writer.write(item.info.name, value)
            del value
            for checkpoint, name in item.reads:
                checkpoint.release(name)
        return writer.close()
    finally:
        writer.abort()


def _sha256(path: Path) -> str:
    # A Hugging Face cache stores each large file as a blob named by its sha256: no need to read it.
    target = path.resolve()
    if path.is_symlink() and target.parent.name == "blobs" and _SHA256.fullmatch(target.name):
        return target.name
    digest = hashlib.sha256()
    with open(target, "rb") as f:
        for block in iter(lambda: f.read(16 * 2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_input(checkpoint: Checkpoint) -> dict[str, Any]:
    """Source, hub revision (when from the Hugging Face cache) and sha256 of every weight/config file."""
    directory = checkpoint_dir(checkpoint)
    files = weight_files(checkpoint)
    if directory is not None and (directory / "config.json").is_file():
        files.append(directory / "config.json")
    record: dict[str, Any] = {"source": checkpoint.source, "path": str(directory.resolve()) if directory else None}
    parts = directory.resolve().parts if directory else ()
    if "snapshots" in parts[:-1]:
        record["revision"] = parts[parts.index("snapshots") + 1]
    record["files"] = {path.name: _sha256(path) for path in files}
    return record


@dataclass
class ModelOutput:
    """Everything a surgery writes besides tensors."""

    operation: str
    inputs: dict[str, Checkpoint]  # role -> checkpoint, e.g. {"base": ..., "donor": ...}
    config: dict[str, Any]
    extras_from: Path | None
    card: str  # markdown body of the README model card
    parameters: dict[str, Any]
    tensor_sources: dict[str, str]
    tokenizer_from: Path | None = None  # a directory with tokenizer files, or a .gguf file holding one
    lineage: Sequence[str] = ()  # the sources the output derives from, base first (hub ids reach the card)
    relation: str | None = None  # the hub's base_model_relation ("merge"), if one fits
    extra_files: dict[str, str] = field(default_factory=dict)  # name -> text, e.g. mergekit_config.yml


def write_model_dir(
    out: str | os.PathLike,
    tensors: Sequence[OutputTensor],
    meta: ModelOutput,
    *,
    shard_size: str | int = DEFAULT_SHARD_SIZE,
    overwrite: bool = False,
    overwrite_any: bool = False,
    input_paths: Sequence[Path] = (),
) -> Path:
    """Write a loadable model directory at `out` atomically; returns its resolved path."""
    shard_bytes = parse_size(shard_size)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        hashes: dict[str, Future] = {role: pool.submit(describe_input, ck) for role, ck in meta.inputs.items()}
        with atomic_output_dir(out, inputs=input_paths, overwrite=overwrite, overwrite_any=overwrite_any) as work:
            weight_map = write_tensors(work, tensors, shard_bytes, f"sfn {meta.operation}")
            gguf_tokenizer = meta.tokenizer_from if meta.tokenizer_from and meta.tokenizer_from.suffix == ".gguf" else None
            copy_model_extras(
                meta.extras_from, work, tokenizer_dir=None if gguf_tokenizer else meta.tokenizer_from, config=meta.config,
                copy_tokenizer=gguf_tokenizer is None,
            )
            if gguf_tokenizer is not None:
                write_gguf_tokenizer(gguf_tokenizer, work)
            provenance = {
                "sfn_version": __version__,
                "operation": meta.operation,
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "inputs": {role: future.result() for role, future in hashes.items()},
                "parameters": meta.parameters,
                "tensors": {name: {"source": meta.tensor_sources[name], "file": weight_map[name]} for name in weight_map},
            }
            (work / "sfn_provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
            (work / "README.md").write_text(_card(meta, provenance))
            for name, text in meta.extra_files.items():
                (work / name).write_text(text)
    finally:
        # On failure, don't make the user wait for hashes nobody will read.
        pool.shutdown(wait=False, cancel_futures=True)
    return Path(out).expanduser().resolve()


def hub_repo(source: str) -> str | None:
    """The hub repository a source names (`org/name` of `org/name@rev` or `org/name/FILE.gguf`), None for a local path."""
    match = HUB_ID.fullmatch(str(source))
    return match["repo"] if match and not Path(str(source)).expanduser().exists() else None


def card_data(meta: ModelOutput) -> ModelCardData:
    """The card's metadata: lineage as the hub reads it (`base_model`, `base_model_relation`)."""
    repos = list(dict.fromkeys(repo for repo in map(hub_repo, meta.lineage) if repo))
    base_model: str | list[str] | None = (repos[0] if len(repos) == 1 else repos) or None
    return ModelCardData(
        library_name="transformers",
        tags=["sfn", meta.operation],
        base_model=base_model,
        base_model_relation=meta.relation if base_model else None,
    )


def _card(meta: ModelOutput, provenance: dict[str, Any]) -> str:
    inputs = "\n".join(f"- {role}: `{record['source']}`" for role, record in provenance["inputs"].items())
    params = "\n".join(f"- {key}: `{value}`" for key, value in meta.parameters.items())
    return (
        f"---\n{card_data(meta).to_yaml()}\n---\n\n"
        f"# sfn {meta.operation}\n\n{meta.card}\n\n## Inputs\n\n{inputs}\n\n## Parameters\n\n{params}\n\n"
        f"Made with sfn {provenance['sfn_version']} on {provenance['created']}; `sfn_provenance.json` records "
        "the hash of every input file and the source of every tensor.\n"
    )
