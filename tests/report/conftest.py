"""The small demo run whose report the report tests inspect (shared with the demo tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from demo.small_demo import small_demo_folder


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_demo_folder(tmp_path_factory)
