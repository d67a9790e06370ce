"""One small demo run on the shipped organism, shared by the demo and report tests (one run per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfn.demo import DemoSettings

# Enough of every stage to exercise it end to end, in about a minute.
SMALL = DemoSettings(eval_limit=6, max_new_tokens=80, batch_size=6, destruction_prompts=2, freeze_steps=3)


def small_demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sfn.demo import run_demo

    out = tmp_path_factory.getbasetemp() / "organism-demo"
    if not (out / "demo.json").is_file():
        run_demo(out, settings=SMALL)
    return out
