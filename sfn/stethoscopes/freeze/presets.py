"""Which parameters a Freeze run trains: the paper's presets, any selector, norms on by default.

Table 2 of the paper tunes the embeddings and the head in every row ("without tuning these components,
finetuning failed to converge") and the normalization modules by default. A preset names the other
modules; `all` is everything but the norms, so that `--no-norms` means the same for every preset.
`requires_grad` is per tensor, so a fused tensor (Phi-3 `qkv_proj`, GPT-2 `c_attn`) trains whole if
any of its parts is selected; that is reported as a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sfn.errors import SfnError, argument

if TYPE_CHECKING:
    from sfn.registry import ModuleMap, ModulePart, Selector

# sfn.registry (and through it torch) is imported inside the functions: `sfn freeze -h` lists PRESETS.

log = logging.getLogger("sfn")

PRESETS: dict[str, str] = {
    "emb+head": "embeddings,head",
    "emb+head+o": "embeddings,head,o",
    "emb+head+qkvo": "embeddings,head,attn",
    "all": "linear,embeddings,head",
}
NORMS_SELECTOR = "norm"


def preset_selector(train: str, *, norms: bool = True) -> Selector:
    """The selector a preset name or selector text stands for, with every norm added when `norms`."""
    from sfn.registry import Selector

    text = PRESETS.get(train.strip(), train)
    if not text.strip():
        raise SfnError(f"{argument('train')} is empty: name a preset (" + ", ".join(PRESETS) + ") or a selector such as 'o'")
    return Selector.parse(f"{text}; {NORMS_SELECTOR}" if norms else text)


@dataclass
class TrainableParameters:
    """What a Freeze run trains: tensor names, the parts selected, and the counts of the model."""

    selector: str
    names: list[str]
    parts: list[ModulePart]
    trainable: int  # number of trainable parameter elements
    total: int  # number of parameter elements of the model (tied tensors once)
    tied_embeddings: bool
    notes: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def describe(self) -> str:
        return f"{self.trainable:,} of {self.total:,} parameters ({100 * self.share:.2f}%) in {len(self.names)} tensors"


def _selects_head(selector: Selector, module_map: ModuleMap) -> bool:
    """Whether `selector` asks for the LM head (which a tied model has no separate tensor for)."""
    from sfn.registry import ModuleMap, ModulePart

    head = ModulePart("lm_head.weight", "head", None, "weight", (1, 1))
    probe = ModuleMap(module_map.model_type, module_map.generic, module_map.num_layers, True, [head])
    return bool(selector.select(probe))


def _is_tied(model: Any) -> bool:
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    inputs = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return output is not None and inputs is not None and output.weight is inputs.weight


def _numel(parameter: Any) -> int:
    """Elements of a parameter, also when DeepSpeed ZeRO-3 has partitioned it away (its `ds_numel`)."""
    return getattr(parameter, "ds_numel", None) or parameter.numel()


def trainable_parameters(model: Any, train: str | Selector, *, norms: bool = True, apply: bool = True) -> TrainableParameters:
    """Select the parameters of `model` to train (a preset name, selector text or `Selector`).

    With `apply`, sets `requires_grad` on every parameter: True exactly for the selected tensors.
    Raises `SfnError` if nothing is selected.
    """
    from sfn.registry import Selector, module_map_of

    selector = train if isinstance(train, Selector) else preset_selector(train, norms=norms)
    module_map = module_map_of(model, warn=False)
    parts = selector.select(module_map)
    tied = _is_tied(model)
    notes: list[str] = []
    embed_parts = [p for p in module_map.parts if p.kind == "embed"]
    if tied and embed_parts:
        embed_name = embed_parts[0].tensor
        head_wanted = _selects_head(selector, module_map)
        embed_wanted = any(p.kind == "embed" for p in parts)
        if head_wanted and not embed_wanted:
            parts = [*parts, *embed_parts]
        if head_wanted or embed_wanted:
            notes.append(
                f"tied embeddings: the embedding and the LM head are one tensor ({embed_name}); training one trains "
                "the other, and its parameters are counted once"
            )
    selected = {p.tensor for p in parts}
    parameters = dict(model.named_parameters())
    names = [name for name in parameters if name in selected]
    if not names:
        raise SfnError(f"{argument('train', selector)} selects no parameter of this {module_map.model_type or 'model'}; "
                       "check it with `sfn modules MODEL --select ...`")
    for name in names:
        all_parts = module_map.parts_of(name)
        chosen = [p.kind for p in parts if p.tensor == name]
        if len(all_parts) > 1 and len(set(chosen)) < len({p.kind for p in all_parts}):
            notes.append(
                f"{name} is a fused tensor ({', '.join(p.kind for p in all_parts)}) and only {', '.join(chosen)} "
                "was selected: requires_grad is per tensor, so all of it trains"
            )
    if module_map.unclassified:
        notes.append(f"{len(module_map.unclassified)} unclassified tensors stay frozen: {', '.join(module_map.unclassified[:5])}")
    for note in notes:
        if "fused tensor" in note:
            log.warning(note)
    if apply:
        for name, parameter in parameters.items():
            parameter.requires_grad_(name in selected)
    trainable = sum(_numel(parameters[name]) for name in names)
    total = sum(_numel(p) for p in parameters.values())
    return TrainableParameters(str(selector), names, parts, trainable, total, tied, notes)


# One colour per preset in every loss figure (freeze/loss.png and the report's), whatever the order
# the runs are listed in; other selectors take the remaining colours in turn.
PRESET_COLOURS = {"emb+head": "tab:blue", "emb+head+o": "tab:orange", "emb+head+qkvo": "tab:green", "all": "tab:red"}
OTHER_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def preset_colours(names: list[str]) -> dict[str, str]:
    """name -> matplotlib colour: the presets' own, the others in turn."""
    others = iter(OTHER_COLOURS * (len(names) // len(OTHER_COLOURS) + 1))
    return {name: PRESET_COLOURS.get(name) or next(others) for name in names}
