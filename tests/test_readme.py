"""Every Python block of README.md (and of the studies' READMEs) runs as written, twice.

The blocks run in a folder holding `base/` and `tuned/`, copies of the organism shipped with sfn, as
the README says; each block runs in a fresh namespace, so each must stand alone. A block that cannot
run offline or quickly starts with a `# not run by the tests: REASON` line, and is skipped with it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from sfn.organism.benchmark import SHIPPED_DIR

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted((ROOT / "studies").glob("*/README.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
SKIP = re.compile(r"#\s*not run by the tests:\s*(.+)")


def python_blocks(path: Path) -> list[tuple[str, str]]:
    """(id 'FILE:LINE', code) of every ```python block of `path`."""
    text = path.read_text()
    name = path.relative_to(ROOT).as_posix()
    return [(f"{name}:{text.count(chr(10), 0, m.start()) + 2}", m.group(1)) for m in BLOCK.finditer(text)]


BLOCKS = [block for path in READMES for block in python_blocks(path)]


def test_the_readme_has_python_examples():
    # Guards the extraction itself: a changed fence style must not silently leave nothing to run.
    assert sum(name.startswith("README.md:") for name, _ in BLOCKS) >= 4


@pytest.fixture(scope="module")
def pair_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    for name in ("base", "tuned"):
        shutil.copytree(SHIPPED_DIR / name, folder / name)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(("name", "code"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_python_block_runs_twice(name, code, pair_folder, monkeypatch):
    skip = SKIP.match(code.lstrip())
    if skip:
        pytest.skip(skip.group(1))
    monkeypatch.chdir(pair_folder)
    compiled = compile(code, name, "exec")
    for _ in range(2):  # twice: a second call must find the API as the first left it
        exec(compiled, {"__name__": "__readme__"})  # noqa: S102 - the README's own code, run as a user would
