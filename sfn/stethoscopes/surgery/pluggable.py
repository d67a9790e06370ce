"""`PluggableModel`: one base model in memory, several plugins attached, switched without reloading.

Plugins are kept in memory already converted to the base's dtype and device, and the base's own
values of every part any plugin replaces are kept once, so switching copies only the parts the
outgoing and incoming plugins touch.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from sfn.errors import SfnError
from sfn.io.load_model import load_model, resolve_model_path
from sfn.registry import ModulePart, module_map
from sfn.stethoscopes.surgery.plugin import Plugin, plugin_targets, read_plugin
from sfn.io.sources import ModelTensors
from sfn.stethoscopes.surgery.splice import PartKey, part_key, part_values, write_part_


class PluggableModel:
    """A base model with named plugins: `m.add("reasoning", path)`, `m.use("reasoning")`, `m.use(None)`.

    Attribute access falls through to the underlying model, so `m.generate(...)` works.
    """

    def __init__(self, base: torch.nn.Module | str | os.PathLike, *, dtype: Any = None, device: str | None = None):
        if isinstance(base, torch.nn.Module):
            self.model, self.tokenizer = base, None
        else:
            directory, _ = resolve_model_path(base)
            has_tokenizer = any(directory.glob("tokenizer*"))
            self.model, self.tokenizer = load_model(base, dtype=dtype, device=device, with_tokenizer=has_tokenizer)
        self._tensors = ModelTensors(self.model)
        self._map = module_map(self._tensors, warn=False)
        self._plugins: dict[str, list[tuple[ModulePart, torch.Tensor]]] = {}
        self._originals: dict[PartKey, tuple[ModulePart, torch.Tensor]] = {}
        self.active: str | None = None

    @property
    def plugins(self) -> list[str]:
        return list(self._plugins)

    def add(self, name: str, plugin: str | os.PathLike | Plugin, *, force: bool = False) -> None:
        """Attach a plugin under `name` (checked against this base unless `force`); it is not used yet."""
        if name in self._plugins:
            raise SfnError(f"a plugin named {name!r} is already attached; remove it first")
        if self.active is not None:
            raise SfnError(f"plugin {self.active!r} is in use; call use(None) before adding another")
        plugin = plugin if isinstance(plugin, Plugin) else read_plugin(plugin)
        targets = plugin_targets(plugin, self._tensors, self._map, force=force)
        loaded = []
        for key, part in targets.items():
            parameter = self._tensors.parameters[part.tensor]
            loaded.append((part, plugin.tensors[key].to(device=parameter.device, dtype=parameter.dtype)))
            if part_key(part) not in self._originals:
                self._originals[part_key(part)] = (part, part_values(parameter.detach(), part))
        self._plugins[name] = loaded

    def use(self, name: str | None) -> None:
        """Switch to plugin `name`, or back to the plain base with None."""
        if name is not None and name not in self._plugins:
            raise SfnError(f"no plugin named {name!r}; attached: {', '.join(self._plugins) or 'none'}")
        if name == self.active:
            return
        incoming = self._plugins.get(name, []) if name is not None else []
        incoming_keys = {part_key(part) for part, _ in incoming}
        if self.active is not None:
            for part, _ in self._plugins[self.active]:
                if part_key(part) not in incoming_keys:
                    self._write(part, self._originals[part_key(part)][1])
        for part, values in incoming:
            self._write(part, values)
        self.active = name

    def remove(self, name: str) -> None:
        if name == self.active:
            self.use(None)
        del self._plugins[name]

    def plugin_bytes(self, name: str) -> int:
        return sum(values.numel() * values.element_size() for _, values in self._plugins[name])

    def _write(self, part: ModulePart, values: torch.Tensor) -> None:
        write_part_(self._tensors.parameters[part.tensor].data, part, values)

    def __getattr__(self, attribute: str) -> Any:
        # Only reached for attributes PluggableModel lacks: generate, config, __call__ targets, ...
        if attribute.startswith("_") or attribute in ("model", "tokenizer"):
            raise AttributeError(attribute)
        return getattr(self.model, attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def __repr__(self) -> str:
        return f"PluggableModel({type(self.model).__name__}, plugins={self.plugins}, active={self.active!r})"
