"""Surgery on a model already loaded in memory, undone exactly: sweeps need no reloads.

`merged(model, donor, "o")` and `destroyed(model, "o@5-30", method="zero")` edit the model's
parameters in place as soon as they are called and return a `WeightEdit`; its `restore()` (or leaving
its `with` block) copies back the saved originals bit for bit. Only the tensors edited are saved.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sfn.errors import SfnError
from sfn.registry import Selector, layer_removal, module_map
from sfn.registry.architectures import architecture_for
from sfn.stethoscopes.surgery.destroy import destroy_part_, layers_of, selected_for_destruction
from sfn.stethoscopes.surgery.plan import group_by_tensor, match_parts, takes_whole
from sfn.io.sources import ModelSource, ModelTensors, opened, source_name
from sfn.stethoscopes.surgery.merge import check_alpha
from sfn.stethoscopes.surgery.splice import blend, copy_part_


class WeightEdit:
    """Edits made to a loaded model; `restore()` (or the end of a `with` block) undoes them exactly."""

    def __init__(self, model: torch.nn.Module, description: str):
        self.model = model
        self.description = description
        self.edited: list[str] = []  # parameter names changed, in order
        self._saved: dict[str, torch.Tensor] = {}
        self._undo: list[Callable[[], None]] = []
        self.active = True

    def save(self, name: str, parameter: torch.Tensor) -> torch.Tensor:
        """Keep the original of `parameter` (first edit only); returns its data to edit in place."""
        if name not in self._saved:
            self._saved[name] = parameter.detach().clone()
            self.edited.append(name)
        return parameter.data

    def on_restore(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def restore(self) -> None:
        """Put back every original value and structure; calling it again does nothing."""
        if not self.active:
            return
        parameters = dict(self.model.named_parameters())
        with torch.no_grad():
            for undo in reversed(self._undo):
                undo()
            for name, original in self._saved.items():
                parameters[name].data.copy_(original)
        self._saved.clear()
        self._undo.clear()
        self.active = False

    def __enter__(self) -> torch.nn.Module:
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def __repr__(self) -> str:
        state = "active" if self.active else "restored"
        return f"WeightEdit({self.description!r}, {len(self.edited)} tensors, {state})"


def merged(model: torch.nn.Module, donor: ModelSource, select: str | Selector, *, alpha: float = 1.0) -> WeightEdit:
    """Copy the selected modules of `donor` into `model` now; the result's `restore()` undoes it.

    `donor` is a path or hub id (read one tensor at a time, never loaded whole), an open `Checkpoint`
    or another loaded model. With `alpha`, selected tensors become W_B + alpha (W_R - W_B) instead, the
    same values as `sfn merge --alpha` (1 copies the donor's, bit for bit).
    """
    check_alpha(alpha)
    base = ModelTensors(model)
    base_map = module_map(base, warn=False)
    blended = "" if alpha == 1 else f" at alpha {alpha:g}"
    edit = WeightEdit(model, f"merged {select} from {source_name(donor)}{blended}")
    with opened(donor) as donor_ck:
        taken = group_by_tensor(match_parts(base, donor_ck, select, base_map=base_map))
        try:
            for name, items in taken.items():
                target = edit.save(name, base.parameters[name])
                source = blend(target, donor_ck.read(items[0].donor.tensor), alpha)
                if takes_whole(base_map, name, items):
                    target.copy_(source)
                else:
                    for item in items:
                        copy_part_(target, source, item.base)
                donor_ck.release(items[0].donor.tensor)
        except BaseException:
            edit.restore()
            raise
    return edit


def destroyed(
    model: torch.nn.Module, select: str | Selector, method: str = "zero", *, std: float = 0.02, seed: int = 0
) -> WeightEdit:
    """Destroy the selected modules of `model` now (zero, reinit or remove); `restore()` undoes it.

    `reinit` writes the same values, bit for bit, as `sfn destroy --method reinit` with the same seed.
    """
    if method == "reinit" and std <= 0:
        raise SfnError(f"std must be positive, got {std}")
    base = ModelTensors(model)
    base_map = module_map(base, warn=False)
    parts = selected_for_destruction(base, select, method, base_map)
    edit = WeightEdit(model, f"{method} {select}")
    try:
        if method == "remove":
            _remove_layers(model, layers_of(parts), base_map.num_layers, edit)
        else:
            for part in parts:
                target = edit.save(part.tensor, base.parameters[part.tensor])
                destroy_part_(target, part, method, std=std, seed=seed)
    except BaseException:
        edit.restore()
        raise
    return edit


def decoder_layers(model: torch.nn.Module, num_layers: int) -> tuple[torch.nn.Module, str, torch.nn.ModuleList]:
    """(owner, attribute, list) of a loaded model's `num_layers` decoder layers, by the registry's
    layer-container names for its architecture."""
    architecture, _ = architecture_for(getattr(model.config, "model_type", None))
    for name, module in model.named_modules():
        leaf = name.rpartition(".")[2]
        if isinstance(module, torch.nn.ModuleList) and len(module) == num_layers and leaf in architecture.layer_containers:
            return model.get_submodule(name.rpartition(".")[0]), leaf, module
    raise SfnError(f"cannot find the list of {num_layers} decoder layers in {type(model).__name__}")


def _set_and_undo(edit: WeightEdit, owner: object, attribute: str, value: object) -> None:
    old = getattr(owner, attribute)
    setattr(owner, attribute, value)
    edit.on_restore(lambda: setattr(owner, attribute, old))


def _remove_layers(model: torch.nn.Module, removed: list[int], num_layers: int, edit: WeightEdit) -> None:
    """Drop layers from the module list; renumber the rest (their KV-cache slots) and shorten the config
    as `sfn destroy --method remove` shortens config.json."""
    removal = layer_removal(model.config.to_dict(), removed, num_layers)
    holder, attribute, layers = decoder_layers(model, num_layers)
    _set_and_undo(edit, holder, attribute, torch.nn.ModuleList([layers[i] for i in removal.kept]))
    for new, old in enumerate(removal.kept):
        for module in layers[old].modules():
            if isinstance(getattr(module, "layer_idx", None), int) and new != old:
                _set_and_undo(edit, module, "layer_idx", new)
    for section, key, value in removal.config_changes(model.config.to_dict()):
        _set_and_undo(edit, model.config if section is None else getattr(model.config, section), key, value)
