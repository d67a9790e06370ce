"""The one selector syntax of sfn: module kinds or groups, regexes on tensor names, and layer ranges.

    o                     every o_proj
    o,norm                o_proj and every norm
    attn@5-30             q, k, v, o in layers 5..30 (inclusive)
    mlp@0-3,10            the MLP of layers 0, 1, 2, 3 and 10
    o@-4--1               o_proj in the last four layers (negative numbers count from the end)
    re:.*layers\\.1\\..*   every tensor whose name fullmatches the regex (must end its clause)
    o@0-5; mlp@20-23      clauses joined by ';' select the union

Kinds are those of `sfn.registry.kinds` (with aliases like `o_proj` and `lm_head`). A layer range
keeps only parts that belong to a layer in it, so it never selects embeddings, the head or the final
norm. A regex selects every part of each tensor it matches (all of q, k, v for a fused qkv tensor).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sfn.errors import SfnError, SfnErrors
from sfn.registry.kinds import GROUPS, KINDS, expand_kind
from sfn.registry.modules import ModuleMap, ModulePart

_SPAN = re.compile(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?")
LayerSpans = tuple[tuple[int, int], ...]


def parse_layers(text: str) -> LayerSpans:
    """'5-30', '0-3,10', '-4--1' -> inclusive (first, last) spans; negatives are resolved later."""
    spans = []
    for piece in text.split(","):
        match = _SPAN.fullmatch(piece)
        if not match:
            raise SfnError(f"bad layer range {piece.strip()!r} in {text!r}: use forms like 5-30, 0-3,10 or -4--1")
        first = int(match[1])
        spans.append((first, int(match[2]) if match[2] is not None else first))
    return tuple(spans)


def resolve_layers(spans: LayerSpans, num_layers: int, problems: list[str] | None = None) -> set[int]:
    """The concrete layer indices of `spans` in a model of `num_layers` layers.

    Problems are appended to `problems` when given (so a caller can report them all at once),
    otherwise raised together.
    """
    found: list[str] = [] if problems is None else problems
    layers: set[int] = set()
    for first, last in spans:
        a = first + num_layers if first < 0 else first
        b = last + num_layers if last < 0 else last
        if not (0 <= a < num_layers and 0 <= b < num_layers):
            found.append(f"layer range {first}-{last} is outside this {num_layers}-layer model (0-{num_layers - 1})")
        elif a > b:
            found.append(f"layer range {first}-{last} is empty (its start comes after its end)")
        else:
            layers.update(range(a, b + 1))
    if problems is None and found:
        raise SfnErrors(found, "bad layer range")
    return layers


@dataclass(frozen=True)
class Clause:
    kinds: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    layers: LayerSpans | None

    def matches(self, part: ModulePart, layers: set[int] | None) -> bool:
        if layers is not None and part.layer not in layers:
            return False
        return part.kind in self.kinds or any(p.fullmatch(part.tensor) for p in self.patterns)


@dataclass(frozen=True)
class Selector:
    """A parsed selector; `Selector.parse('o,norm', layers='5-30')`.

    None (no selector given) selects everything; so does the word `all`. An empty or blank text is an
    error: an unset shell variable must not turn into "every module".
    """

    text: str
    clauses: tuple[Clause, ...]

    @classmethod
    def parse(cls, text: str | None, layers: str | None = None, problems: list[str] | None = None) -> "Selector":
        """Parse `text`; every problem is raised at once, or appended to `problems` when it is given."""
        found: list[str] = [] if problems is None else problems
        if text is not None and not text.strip():
            found.append(f"the selector {text!r} is empty: name modules (e.g. 'o', 'attn@5-30') or write 'all'")
        if layers is not None and not layers.strip():
            found.append(f"the layer range {layers!r} is empty: give layers like 5-30, or leave the option out")
            layers = None
        text = (text or "").strip()
        try:
            default_layers = parse_layers(layers) if layers else None
        except SfnError as exc:
            found.append(str(exc))
            default_layers = None
        if not text:
            selector = cls(text if not layers else f"all@{layers}", (Clause(frozenset(KINDS), (), default_layers),))
        else:
            clauses = [_parse_clause(raw.strip(), default_layers, found) for raw in text.split(";") if raw.strip()]
            if not clauses:
                found.append("it names no module")
            selector = cls(text, tuple(clauses))
        if problems is None and found:
            raise SfnErrors(found, f"bad selector {text!r}")
        return selector

    def select(self, module_map: ModuleMap, problems: list[str] | None = None) -> list[ModulePart]:
        """The parts of `module_map` this selector matches, in map order.

        Layer ranges that do not fit the model are raised together, or appended to `problems`.
        """
        found: list[str] = [] if problems is None else problems
        resolved = [
            (c, resolve_layers(c.layers, module_map.num_layers, found) if c.layers is not None else None)
            for c in self.clauses
        ]
        if problems is None and found:
            raise SfnErrors(found, f"selector {self.text!r} does not fit this model")
        return [p for p in module_map.parts if any(c.matches(p, layers) for c, layers in resolved)]

    def __str__(self) -> str:
        return self.text or "all"


def _parse_clause(raw: str, default_layers: LayerSpans | None, problems: list[str]) -> Clause:
    targets, layers = raw, default_layers
    head, at, tail = raw.rpartition("@")
    regex_start = raw.find("re:")
    if at and _is_layer_text(tail):
        targets, layers = head, parse_layers(tail)  # cannot fail: _is_layer_text checked it
    elif at and (regex_start < 0 or regex_start > len(head)):
        # outside a regex, '@' always starts a layer range
        targets = head
        problems.append(f"bad layer range {tail.strip()!r} in {raw!r}: use forms like 5-30, 0-3,10 or -4--1")
    kinds: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    regex_at = targets.find("re:")
    if regex_at >= 0:
        try:
            patterns.append(re.compile(targets[regex_at + 3 :].strip()))
        except re.error as exc:
            problems.append(f"regex {targets[regex_at + 3:]!r} does not compile: {exc}")
        targets = targets[:regex_at]
    for word in (w.strip() for w in targets.split(",")):
        if not word:
            continue
        expanded = expand_kind(word)
        if expanded is None:
            problems.append(
                f"unknown module {word!r}: use a kind ({', '.join(KINDS)}), a group ({', '.join(GROUPS)}), "
                f"or re:REGEX for tensor names"
            )
        else:
            kinds.update(expanded)
    if not kinds and not patterns and not problems:
        problems.append(f"clause {raw!r} names no module")
    return Clause(frozenset(kinds), tuple(patterns), layers)


def _is_layer_text(text: str) -> bool:
    return all(_SPAN.fullmatch(piece) for piece in text.split(",")) and bool(text.strip())


def select(module_map: ModuleMap, selector: str | Selector | None, layers: str | None = None) -> list[ModulePart]:
    """Parts of `module_map` matched by `selector` (text or parsed); everything when it is None.

    Text is parsed and checked against the model in one go, so every problem is reported at once.
    """
    if isinstance(selector, Selector):
        return selector.select(module_map)
    problems: list[str] = []
    chosen = Selector.parse(selector, layers, problems).select(module_map, problems)
    if problems:
        raise SfnErrors(problems, f"bad selector {selector!r}")
    return chosen
