"""sfn.lazy: package names load on first use, and a function named like its submodule stays the function."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    root = tmp_path / "lazypkg"
    root.mkdir()
    (root / "__init__.py").write_text(
        "from sfn.lazy import lazy_exports\n"
        "lazy_exports(__name__, {'merge': 'lazypkg.merge', 'Heavy': 'lazypkg.heavy'})\n"
    )
    (root / "merge.py").write_text("def merge():\n    return 'merged'\n")
    (root / "heavy.py").write_text("class Heavy:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazypkg"
    for name in [m for m in sys.modules if m == "lazypkg" or m.startswith("lazypkg.")]:
        del sys.modules[name]


def test_names_load_on_first_use(package: str) -> None:
    module = importlib.import_module(package)
    assert f"{package}.heavy" not in sys.modules
    assert module.Heavy.__name__ == "Heavy" and f"{package}.heavy" in sys.modules
    assert sorted(module.__all__) == ["Heavy", "merge"] and "merge" in dir(module)
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        module.missing  # noqa: B018


def test_function_named_like_its_submodule_stays_the_function(package: str) -> None:
    importlib.import_module(f"{package}.merge")  # the import system binds the submodule on the package
    module = importlib.import_module(package)
    assert not isinstance(module.merge, types.ModuleType) and module.merge() == "merged"
    from lazypkg import merge  # noqa: PLC0415

    assert merge() == "merged"
