"""The cells of a map: which module kind, over which layers, edited how; checked before any work."""

from __future__ import annotations

from dataclasses import dataclass

from sfn.registry import KINDS, ModuleMap, expand_kind
from sfn.registry.select import parse_layers

MODES = ("transplant", "zero", "reinit", "remove")
DESTRUCTION_MODES = ("zero", "reinit", "remove")
DEFAULT_ALPHAS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)


@dataclass(frozen=True)
class Cell:
    mode: str  # a MODES entry, or "alpha" for a point of an alpha curve
    kind: str  # a registry kind, or the selector of an alpha curve
    layers: str  # "3", "0-4" or "all"
    start: int  # the first layer the edit touches (0 when it touches the embeddings or every layer)
    alpha: float | None = None

    @property
    def selector(self) -> str:
        if self.mode == "remove":
            return f"all@{self.layers}"
        return self.kind if self.layers == "all" else f"{self.kind}@{self.layers}"


def map_kinds(module_map: ModuleMap, kinds: str | None, problems: list[str]) -> tuple[list[str], list[str]]:
    """(kinds inside the layers, kinds outside them) of the model that `kinds` names, in registry order."""
    present = {part.kind for part in module_map.parts}
    if kinds is None:
        wanted = [kind for kind in KINDS if kind in present]
    else:
        wanted = []
        for word in (w.strip() for w in kinds.split(",")):
            expanded = expand_kind(word) if word else None
            if expanded is None:
                problems.append(f"--kinds: {word!r} is not a module kind or group (e.g. o, qkv, mlp, norm)")
                continue
            missing = [kind for kind in expanded if kind not in present]
            if len(expanded) == 1 and missing:
                problems.append(f"--kinds: the model has no {word} module")
            wanted += [kind for kind in expanded if kind in present and kind not in wanted]
    in_layers = {part.kind for part in module_map.parts if part.layer is not None}
    return [k for k in wanted if k in in_layers], [k for k in wanted if k not in in_layers]


def layer_windows(num_layers: int, window: int, windows: str | None, problems: list[str]) -> list[tuple[int, int]]:
    """Inclusive (first, last) layer windows: explicit `windows`, else consecutive runs of `window` layers."""
    if windows:
        try:
            spans = parse_layers(windows)
        except Exception as error:  # the selector syntax's own message says what is wrong
            problems.append(f"--windows {windows!r}: {error}")
            return []
        resolved = []
        for first, last in spans:
            first, last = (first + num_layers if first < 0 else first), (last + num_layers if last < 0 else last)
            if not 0 <= first <= last < num_layers:
                problems.append(f"--windows: {first}-{last} is outside the model's layers 0-{num_layers - 1}")
            else:
                resolved.append((first, last))
        return resolved
    if window < 1:
        problems.append(f"--window must be at least 1 layer, got {window}")
        return []
    return [(first, min(first + window, num_layers) - 1) for first in range(0, num_layers, window)]


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def plan_cells(
    module_map: ModuleMap,
    *,
    modes: list[str],
    kinds: str | None,
    window: int,
    windows: str | None,
    alpha_curve: str | None,
    alphas: list[float],
    problems: list[str],
) -> list[Cell]:
    """Every cell of the map, or the problems with the request (appended to `problems`)."""
    for mode in modes:
        if mode not in MODES:
            problems.append(f"--modes: {mode!r} is not one of {', '.join(MODES)}")
    if not modes and not alpha_curve:
        problems.append("--modes: give at least one mode (or an --alpha-curve)")
    layer_kinds, other_kinds = map_kinds(module_map, kinds, problems)
    spans = layer_windows(module_map.num_layers, window, windows, problems)
    cells = []
    for mode in (m for m in modes if m in MODES):
        if mode == "remove":
            cells += [Cell("remove", "layer", _span(a, b), a) for a, b in spans]
            continue
        for kind in layer_kinds:
            cells += [Cell(mode, kind, _span(a, b), a) for a, b in spans]
            cells.append(Cell(mode, kind, "all", 0))
        cells += [Cell(mode, kind, "all", 0) for kind in other_kinds]
    if alpha_curve:
        cells += [Cell("alpha", alpha_curve, "all", 0, alpha) for alpha in alphas]
    return cells
