"""A named baseline for before/after benchmarks: the sfn package as it was at a git revision."""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_at(revision: str) -> Path:
    """A temporary folder holding `sfn/` at `revision` (put it first on PYTHONPATH to run that version)."""
    folder = Path(tempfile.mkdtemp(prefix=f"sfn-{revision[:12]}-"))
    archive = folder / "sfn.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), revision, "sfn"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    archive.unlink()
    return folder


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()
