"""Packages whose public names are imported on first use, so that importing one light module of a
package (a CLI's option lists, a preset table) does not load torch through the package's `__init__`.

`lazy_exports(__name__, {"name": "module", ...})` at the end of a package `__init__` makes
`package.name` import `module` and return its `name` the first time it is asked for.

A public function may share its name with the submodule that defines it (`sfn.stethoscopes.surgery.merge`
the function in `merge.py`). Importing that submodule makes the import system bind the *module* as an
attribute of the package; the package here keeps the function instead, exactly as an eager
`from .merge import merge` in `__init__` would, so the public name never turns into a module.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any


class _LazyPackage(ModuleType):
    def __getattr__(self, name: str) -> Any:  # called only for names not yet bound
        exports = self.__dict__.get("_lazy_exports", {})
        if name not in exports:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        ModuleType.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        exports = self.__dict__.get("_lazy_exports", {})
        if isinstance(value, ModuleType) and value.__name__ == f"{self.__name__}.{name}" and name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        ModuleType.__setattr__(self, name, value)

    def __dir__(self) -> list[str]:
        return sorted({*self.__dict__, *self.__dict__.get("_lazy_exports", {})})


def lazy_exports(package: str, exports: dict[str, str]) -> None:
    """Make each `exports` name of `package` ('name': 'module that defines it') load on first use."""
    module = sys.modules[package]
    module.__class__ = _LazyPackage
    ModuleType.__setattr__(module, "_lazy_exports", dict(exports))
    if "__all__" not in module.__dict__:
        ModuleType.__setattr__(module, "__all__", sorted(exports))
