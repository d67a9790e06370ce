"""Errors name the Python argument a caller passed, and the command-line flag it comes from."""

from __future__ import annotations

import pytest

import sfn
from sfn.errors import SfnError, SfnErrors, argument
from sfn.eval.config import EvalConfig
from sfn.stethoscopes.freeze.config import FreezeConfig


def test_an_argument_is_named_for_python_then_for_the_command_line():
    assert argument("prompt_format", "plain", flag="--format") == "prompt_format='plain' (--format plain)"
    assert argument("max_steps") == "max_steps (--max-steps)"
    assert argument("overwrite", True) == "overwrite=True (--overwrite)"
    assert argument("save_total_limit", flag="") == "save_total_limit"


def test_freeze_settings_name_the_python_arguments():
    with pytest.raises(SfnErrors) as error:
        FreezeConfig(data="train.jsonl", out="runs/o", prompt_format="plian", max_steps=0, lr=0).validate()
    problems = "\n".join(error.value.problems)
    assert "prompt_format='plian' (--format plian): choose one of" in problems
    assert "max_steps (--max-steps) must be at least 1, got 0" in problems
    assert "lr (--lr) must be positive" in problems


def test_evaluation_settings_name_the_python_arguments():
    with pytest.raises(SfnErrors) as error:
        EvalConfig(benchmark="gsm8k", prompt_format="plian", backend="tgi", limit=0).resolved()
    problems = "\n".join(error.value.problems)
    assert "prompt_format='plian' (--format plian)" in problems
    assert "backend='tgi' (--backend tgi)" in problems
    assert "limit (--limit) must be at least 1" in problems


def test_surgery_errors_name_the_python_arguments(tiny_model_dir, tmp_path):
    with pytest.raises(SfnError, match=r"std \(--std\) must be positive"):
        sfn.destroy(tiny_model_dir("llama"), "o", tmp_path / "out", method="reinit", std=-1)
    with pytest.raises(SfnError, match=r"out \(--out\).*dry_run=True \(--plan\)"):
        sfn.merge(tiny_model_dir("llama"), tiny_model_dir("llama"), "o")
    assert not (tmp_path / "out").exists()
