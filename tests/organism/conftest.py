"""Fixtures of the organism tests: the shipped weights and their provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfn.organism.benchmark import SHIPPED_DIR


@pytest.fixture(scope="session")
def shipped() -> Path:
    if not (SHIPPED_DIR / "provenance.json").is_file():
        pytest.fail(f"the organism's weights are missing from {SHIPPED_DIR}: run `sfn organism build --out {SHIPPED_DIR}`")
    return SHIPPED_DIR


@pytest.fixture(scope="session")
def provenance(shipped: Path) -> dict:
    return json.loads((shipped / "provenance.json").read_text())


@pytest.fixture(scope="session")
def shipped_tokenizer(shipped: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(shipped / "base")
