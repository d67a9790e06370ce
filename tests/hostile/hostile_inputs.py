"""Helpers of the hostile-input tests: digests of inputs, listings of outputs, small data files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (or of `root` itself when it is a file), by relative path."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root) if p != root else p.name): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def listing(root: Path) -> list[str]:
    """Every path under `root`, hidden ones included, relative to it."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def arithmetic_rows(count: int) -> list[dict]:
    """GSM8K-shaped rows: a question and a worked solution ending in '#### N'."""
    return [
        {"question": f"What is {i % 7 + 2} plus {i % 5 + 3}?", "answer": f"It is {i % 7 + i % 5 + 5}.\n#### {i % 7 + i % 5 + 5}"}
        for i in range(count)
    ]
