"""The public API of `sfn`: plain names that no import of a subpackage can rebind."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import sfn


def test_no_public_name_is_a_submodule_name():
    # Importing sfn.x sets the attribute sfn.x to the module; a public function named x would be shadowed.
    children = {info.name for info in pkgutil.iter_modules(sfn.__path__)}
    assert children, "pkgutil found no submodules of sfn"
    assert sorted(set(sfn.__all__) & children) == []


def test_every_public_name_resolves():
    for name in sfn.__all__:
        assert getattr(sfn, name) is not None, name


@pytest.mark.slow
def test_public_names_survive_importing_every_module():
    before = {name: getattr(sfn, name) for name in sfn.__all__}
    imported = [info.name for info in pkgutil.walk_packages(sfn.__path__, "sfn.")]
    for name in imported:
        importlib.import_module(name)
    assert len(imported) > 50
    for name in sfn.__all__:
        if name == "__version__":
            continue
        # Twice: the first access may import the defining module, which must not rebind the name either.
        for _ in range(2):
            value = getattr(sfn, name)
            assert not isinstance(value, types.ModuleType), f"sfn.{name} is a module"
            assert callable(value), f"sfn.{name} is not callable"
            assert value is before[name], f"sfn.{name} changed after importing every module"


@pytest.mark.slow
def test_the_public_api_leaves_the_users_matplotlib_backend():
    # A notebook's backend is the user's: resolving sfn's names must not switch it (a fresh process,
    # since tests in this one may already have imported plotting modules).
    code = (
        "import matplotlib; matplotlib.use('svg'); import sfn\n"
        "[getattr(sfn, name) for name in sfn.__all__]\n"
        "print(matplotlib.get_backend())"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "svg"
