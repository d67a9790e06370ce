"""Installing sfn builds nothing from source: every package pip would install, for the core
dependencies and for each extra, comes as a wheel (asks PyPI; skips, saying so, when unreachable)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("optional-dependencies", {}))


def _pypi_reachable() -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
        return True
    except OSError:
        return False


def _would_build(report: dict) -> list[str]:
    """Packages of a `pip install --report` that pip would build: anything but a wheel and the project itself."""
    built = []
    for item in report["install"]:
        info = item["download_info"]
        if "dir_info" in info and Path(info["url"].removeprefix("file://")) == ROOT:
            continue
        if not info["url"].endswith(".whl"):
            built.append(f"{item['metadata']['name']} {item['metadata']['version']} ({info['url']})")
    return built


def test_a_source_distribution_in_a_report_is_found() -> None:
    def item(name: str, url: str, **info) -> dict:
        return {"metadata": {"name": name, "version": "1.0"}, "download_info": {"url": url, **info}}

    report = {"install": [
        item("sfn", ROOT.as_uri(), dir_info={"editable": False}),
        item("numpy", "https://files.pythonhosted.org/numpy-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", archive_info={}),
        item("llama-cpp-python", "https://files.pythonhosted.org/llama_cpp_python-1.0.tar.gz", archive_info={}),
    ]}
    assert _would_build(report) == [
        "llama-cpp-python 1.0 (https://files.pythonhosted.org/llama_cpp_python-1.0.tar.gz)"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("extra", EXTRAS)  # each extra also brings the core dependencies: one pip run each
def test_install_builds_no_source_distribution(extra: str, tmp_path: Path) -> None:
    if not _pypi_reachable():
        pytest.skip("PyPI is unreachable: cannot ask pip what an install would fetch")
    target = f"{ROOT}[{extra}]"
    report_path = tmp_path / "report.json"
    # torch as the README installs it, first: the build already here (CPU), not the newest on PyPI.
    # vLLM's extras pin their own torch (the GPU build), which pip then takes.
    constraints = tmp_path / "constraints.txt"
    torch_version = importlib.metadata.version("torch").split("+")[0]
    constraints.write_text("" if extra.startswith("vllm") else f"torch=={torch_version}\n")
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--constraint", str(constraints), "--report", str(report_path), target]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"pip could not resolve {target}:\n{done.stderr[-3000:]}"
    built = _would_build(json.loads(report_path.read_text()))
    assert not built, f"pip install {target} would build from source: " + "; ".join(built)
