"""The import graph of sfn keeps its layers (docs/architecture.md): every import of every module,
function-local ones included, read with `ast` - nothing is imported to build the graph but the light
package `__init__`s whose lazy name tables say where a lazily exported name really comes from."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sfn"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def _lazy_table(package: str) -> dict[str, str]:
    """The names a package exports lazily (`sfn.lazy.lazy_exports`, or sfn's own `_EXPORTS`) -> defining module."""
    module = importlib.import_module(package)
    return dict(module.__dict__.get("_lazy_exports") or module.__dict__.get("_EXPORTS") or {})


LAZY = {package: _lazy_table(package) for package in PACKAGES}


def _target(package: str, name: str) -> str:
    """The sfn module `from package import name` loads."""
    if f"{package}.{name}" in MODULES:
        return f"{package}.{name}"
    return LAZY.get(package, {}).get(name, package)


def imports_of(module: str) -> set[str]:
    """The sfn modules `module` imports anywhere in its code."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base in MODULES:
                found |= {_target(base, alias.name) for alias in node.names}
    found.discard(module)
    return {name for name in found if name in MODULES}


GRAPH = {module: imports_of(module) for module in MODULES}


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(sources: str, forbidden: tuple[str, ...], skip: tuple[str, ...] = ()) -> list[str]:
    return sorted(f"{module} imports {target}" for module, targets in GRAPH.items()
                  if _inside(module, sources) and not module.endswith(skip)
                  for target in targets if any(_inside(target, layer) for layer in forbidden))


def test_the_graph_sees_function_local_and_lazy_imports() -> None:
    # Function-local: the surgery CLI imports the sweep inside its command.
    assert "sfn.experiments.sweep" in GRAPH["sfn.stethoscopes.surgery.cli"]
    # Lazy: `from sfn.stethoscopes.surgery import merged` is an import of inmemory.py.
    assert "sfn.stethoscopes.surgery.inmemory" in GRAPH["sfn.experiments.merge_table"]
    assert len(GRAPH) > 100 and sum(map(len, GRAPH.values())) > 300


@pytest.mark.parametrize("layer", ["sfn.io", "sfn.registry"])
def test_io_and_registry_know_no_stethoscope(layer: str) -> None:
    above = ("sfn.stethoscopes", "sfn.experiments", "sfn.eval", "sfn.demo", "sfn.report", "sfn.organism", "sfn.inspect")
    assert _violations(layer, above) == []


def test_surgery_edits_weights_and_knows_no_evaluation() -> None:
    assert _violations("sfn.stethoscopes.surgery", ("sfn.eval",)) == []
    # Only its command line, a front end above every layer, may reach an experiment.
    assert _violations("sfn.stethoscopes.surgery", ("sfn.experiments", "sfn.demo", "sfn.report"), skip=(".cli",)) == []


def test_eval_knows_no_stethoscope_experiment_or_demo() -> None:
    assert _violations("sfn.eval", ("sfn.stethoscopes", "sfn.experiments", "sfn.demo", "sfn.organism")) == []


def test_no_sub_command_imports_the_main_cli() -> None:
    # sfn.cli loads the sub-commands by name; they get their helpers from sfn.cli_errors.
    assert sorted(module for module, targets in GRAPH.items() if "sfn.cli" in targets) == []


def test_no_import_cycles() -> None:
    cycles, state, stack = [], {}, []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert cycles == []
