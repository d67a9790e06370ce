"""Module plugins (the paper's Conjecture 2): a small file of modules that turns BASE into a tuned model.

A plugin holds the selected parts of TUNED (in Hugging Face [out, in] orientation, one entry per part,
so a fused tensor contributes only the rows selected) and metadata naming its base: architecture,
the sha256 of BASE's files, and the sha256 of BASE's values of exactly those parts, which is what
`apply` checks (on disk and in memory alike) before refusing a plugin made for another base.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sfn import __version__
from sfn.errors import SfnError, SfnErrors
from sfn.io import Checkpoint, TensorInfo
from sfn.io.guard import guard_output
from sfn.io.safetensors_reader import read_safetensors_header
from sfn.io.full_disk import is_no_space, no_space_error
from sfn.io.writer import check_output_dir, honour_umask, partial_file, remove_stale_partials
from sfn.registry import ModuleMap, ModulePart, Selector, module_map
from sfn.stethoscopes.surgery.output import (
    DEFAULT_SHARD_SIZE,
    ModelOutput,
    OutputTensor,
    copied_tensor,
    describe_input,
    write_model_dir,
)
from sfn.stethoscopes.surgery.complete import check_complete
from sfn.stethoscopes.surgery.plan import match_parts, parse_selector
from sfn.io.sources import ModelSource, checkpoint_dir, opened, tokenizer_source
from sfn.stethoscopes.surgery.splice import PartKey, describe_part, part_key, part_values, write_part_

METADATA_KEY = "sfn_plugin"
FORMAT_VERSION = 1


def _entry_key(part: ModulePart) -> str:
    return part.tensor if part.rows is None else f"{part.tensor}:{part.kind}"


def parts_digest(checkpoint: Checkpoint, parts: list[ModulePart], dtypes: dict[str, str] | None = None) -> str:
    """sha256 over the parts' values in HF orientation (cast to the recorded dtypes when given)."""
    digest = hashlib.sha256()
    for part in sorted(parts, key=lambda p: str(part_key(p))):
        values = part_values(checkpoint.read(part.tensor), part)
        if dtypes is not None:
            values = values.to(getattr(torch, dtypes[_entry_key(part)]))
        digest.update(repr(part_key(part)).encode())
        digest.update(values.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        checkpoint.release(part.tensor)
    return digest.hexdigest()


@dataclass
class Plugin:
    """A plugin file, read whole (it is small): its metadata and one tensor per part."""

    path: Path
    metadata: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.metadata["entries"]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def read_plugin(path: str | os.PathLike) -> Plugin:
    path = Path(path)
    if not path.is_file():
        raise SfnError(f"plugin file {path} does not exist")
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get(METADATA_KEY)
        if raw is None:
            raise SfnError(f"{path} is a safetensors file but not an sfn plugin (no {METADATA_KEY} metadata)")
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    return Plugin(path, json.loads(raw), tensors)


def is_plugin_file(path: Path) -> bool:
    """Whether `path` is a plugin sfn wrote (so that --overwrite may replace it)."""
    try:
        header, _ = read_safetensors_header(path)
    except (SfnError, OSError):
        return False
    return METADATA_KEY in (header.get("__metadata__") or {})


def extract_plugin(
    base: ModelSource,
    tuned: ModelSource,
    select: str | Selector,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    overwrite_any: bool = False,
    allow_pickle: bool = False,
) -> Plugin:
    """Write the selected parts of TUNED, with the identity of BASE, to the plugin file `out`.

    `out` may be no input's file or directory; an existing plugin is replaced with `overwrite`, any
    other file only with `overwrite_any`."""
    selector = parse_selector(select)
    with opened(base, allow_pickle=allow_pickle) as base_ck, opened(tuned, allow_pickle=allow_pickle) as tuned_ck:
        inputs = [p for p in (checkpoint_dir(base_ck), checkpoint_dir(tuned_ck)) if p is not None]
        out = guard_output(out, inputs=inputs, file=True, overwrite=overwrite, overwrite_any=overwrite_any, ours=is_plugin_file)
        taken = match_parts(base_ck, tuned_ck, selector, action="extract")
        tensors, entries = {}, []
        for item in taken:
            key = _entry_key(item.base)
            tensors[key] = part_values(tuned_ck.read(item.donor.tensor), item.donor)
            tuned_ck.release(item.donor.tensor)
            kind, layer, param = part_key(item.base)
            base_dtype = base_ck.info(item.base.tensor).dtype_name
            entries.append(
                {"key": key, "kind": kind, "layer": layer, "param": param, "shape": list(item.base.shape), "base_dtype": base_dtype}
            )
        dtypes = {e["key"]: e["base_dtype"] for e in entries}
        metadata = {
            "format": FORMAT_VERSION,
            "sfn_version": __version__,
            "selector": str(selector),
            "model_type": base_ck.config.get("model_type"),
            "architectures": base_ck.config.get("architectures"),
            "base": describe_input(base_ck) | {"parts_sha256": parts_digest(base_ck, [t.base for t in taken], dtypes)},
            "tuned": {"source": tuned_ck.source},
            "entries": entries,
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out)
    partial = partial_file(out)
    try:
        save_file(tensors, str(partial), metadata={"format": "pt", METADATA_KEY: json.dumps(metadata)})
        honour_umask(partial)
        os.replace(partial, out)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        if is_no_space(error):
            raise no_space_error(out) from None
        raise
    return Plugin(out, metadata, tensors)


def plugin_targets(plugin: Plugin, checkpoint: Checkpoint, target_map: ModuleMap, *, force: bool = False) -> dict[str, ModulePart]:
    """Entry key -> the target's part it replaces; refuses a foreign base unless `force`."""
    problems = []
    meta = plugin.metadata
    if meta.get("model_type") != target_map.model_type:
        problems.append(
            f"plugin {plugin.path.name} is for architecture {meta.get('model_type')!r}, "
            f"but {checkpoint.source} is {target_map.model_type!r}"
        )
    parts: dict[PartKey, ModulePart] = {part_key(p): p for p in target_map.parts}
    targets = {}
    for entry in meta["entries"]:
        part = parts.get((entry["kind"], entry["layer"], entry["param"]))
        if part is None:
            problems.append(f"{checkpoint.source} has no {entry['kind']} {entry['param']} of layer {entry['layer']}")
        elif list(part.shape) != entry["shape"]:
            problems.append(f"{describe_part(part)} is {list(part.shape)} in {checkpoint.source}, {entry['shape']} in the plugin")
        else:
            targets[entry["key"]] = part
    if not problems and not force:
        dtypes = {e["key"]: e["base_dtype"] for e in meta["entries"]}
        digest = parts_digest(checkpoint, list(targets.values()), {_entry_key(p): dtypes[k] for k, p in targets.items()})
        if digest != meta["base"]["parts_sha256"]:
            problems.append(
                f"plugin {plugin.path.name} was made for base {meta['base']['source']!r}, and {checkpoint.source} "
                "differs from it in the modules the plugin replaces; apply it to its own base, or force it "
                "(force=True, --force)"
            )
    if problems:
        raise SfnErrors(problems, f"cannot apply plugin {plugin.path} to {checkpoint.source}")
    return targets


def _patched(checkpoint: Checkpoint, info: TensorInfo, edits: list[tuple[ModulePart, torch.Tensor]]) -> OutputTensor:
    def produce() -> torch.Tensor:
        tensor = checkpoint.read(info.name).to(info.dtype, copy=True)
        for part, values in edits:
            write_part_(tensor, part, values.to(info.dtype))
        return tensor

    return OutputTensor(info, produce, ((checkpoint, info.name),))


def _edits_by_tensor(plugin: Plugin, checkpoint: Checkpoint, force: bool) -> dict[str, list[tuple[ModulePart, torch.Tensor]]]:
    """Tensor name of `checkpoint` -> the plugin's parts that go into it, with their values."""
    edits: dict[str, list[tuple[ModulePart, torch.Tensor]]] = {}
    for key, part in plugin_targets(plugin, checkpoint, module_map(checkpoint, warn=False), force=force).items():
        edits.setdefault(part.tensor, []).append((part, plugin.tensors[key]))
    return edits


def plugin_edits(base: ModelSource, plugin: str | os.PathLike | Plugin, *, force: bool = False) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) for every BASE tensor the plugin changes, as `apply_plugin` writes it: for a
    running engine, `VLLMBackend(BASE).variant(plugin_edits(BASE, plugin))` serves the plugin's
    modules without writing a model (one engine, several plugins in turn)."""
    plugin = plugin if isinstance(plugin, Plugin) else read_plugin(plugin)
    with opened(base) as base_ck:
        infos = base_ck.tensors()
        for name, parts in _edits_by_tensor(plugin, base_ck, force).items():
            yield name, _patched(base_ck, infos[name], parts).produce()


def apply_plugin(
    base: ModelSource,
    plugin: str | os.PathLike | Plugin,
    out: str | os.PathLike,
    *,
    force: bool = False,
    shard_size: str | int = DEFAULT_SHARD_SIZE,
    overwrite: bool = False,
    overwrite_any: bool = False,
    allow_pickle: bool = False,
) -> Path:
    """Write BASE with the plugin's modules in place as a full model directory at `out`."""
    plugin = plugin if isinstance(plugin, Plugin) else read_plugin(plugin)
    with opened(base, allow_pickle=allow_pickle) as base_ck:
        source_dir = checkpoint_dir(base_ck)
        inputs = [p for p in (source_dir, plugin.path) if p is not None]
        check_output_dir(out, inputs=inputs, overwrite=overwrite, overwrite_any=overwrite_any)
        check_complete(base_ck, "base")
        edits = _edits_by_tensor(plugin, base_ck, force)
        tensors = [
            _patched(base_ck, info, edits[name]) if name in edits else copied_tensor(base_ck, name, info)
            for name, info in base_ck.tensors().items()
        ]
        meta = ModelOutput(
            operation="plugin-apply",
            inputs={"base": base_ck},
            config=dict(base_ck.config),
            extras_from=source_dir,
            tokenizer_from=tokenizer_source(base_ck),
            lineage=[base_ck.source, plugin.metadata["tuned"]["source"]],
            relation="merge",
            card=f"`{base_ck.source}` with plugin `{plugin.path.name}` ({plugin.metadata['selector']} of "
            f"`{plugin.metadata['tuned']['source']}`) applied.",
            parameters={"plugin": str(plugin.path), "selector": plugin.metadata["selector"], "forced": force},
            tensor_sources={name: ("plugin" if name in edits else "base") for name in base_ck.tensors()},
        )
        return write_model_dir(
            out, tensors, meta, shard_size=shard_size, overwrite=overwrite, overwrite_any=overwrite_any, input_paths=inputs
        )
