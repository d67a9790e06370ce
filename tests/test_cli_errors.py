"""The CLI's shared mechanics: help without heavy imports, one error convention, interrupts exit 130."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sfn.cli import main

HEAVY = ("torch", "transformers", "pandas", "numba")

# In a fresh interpreter: `--help` of every command and subcommand, then an unknown option to each,
# then which heavy modules got imported. Commands are found by walking the groups (as `sfn -h` does).
PROBE = r"""
import contextlib, io, json, sys
import click
from sfn.cli import main

def walk(group, path):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield [*path, name]
        if isinstance(command, click.Group):
            yield from walk(command, [*path, name])

paths = [[], *walk(main, [])]
codes = {}
for path in paths:
    for extra in (["--help"], ["--no-such-option"]):
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                main.main([*path, *extra], prog_name="sfn")
            except SystemExit as exit:
                codes[" ".join([*path, *extra])] = [exit.code, err.getvalue().strip().splitlines()[-1:]]
print(json.dumps({"codes": codes, "heavy": [m for m in HEAVY if m in sys.modules]}))
"""


def test_help_and_argument_errors_import_nothing_heavy() -> None:
    probe = f"HEAVY = {HEAVY!r}\n{PROBE}"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                               cwd=Path(__file__).parents[1])
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"imported by help or argument errors: {report['heavy']}"
    codes = report["codes"]
    assert {"merge --help", "plugin apply --help", "organism build --help", "eval --help", "freeze --help"} <= set(codes)
    for invocation, (code, last_line) in codes.items():
        if invocation.endswith("--help"):
            assert code == 0, invocation
        else:
            assert code == 2 and last_line[0].startswith("error: No such option"), (invocation, code, last_line)


def test_listed_help_of_lazy_commands_is_their_own() -> None:
    assert set(main.lazy_help) == set(main.lazy_commands)
    ctx = click.Context(main)
    for name in main.lazy_commands:
        command = main.get_command(ctx, name)
        assert main.lazy_help[name] == command.get_short_help_str(300), name


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> click.testing.Result:
        return CliRunner().invoke(main, [str(arg) for arg in args])

    return run


def test_user_errors_exit_2_with_error_prefix(invoke, tiny_model_dir, tmp_path: Path) -> None:
    model = tiny_model_dir("llama")
    missing = tmp_path / "no-such-model"
    (tmp_path / "empty").mkdir()
    failures = {
        "modules": invoke("modules", model, "--select", "bogus"),
        "delta": invoke("delta", model, missing, "--out", tmp_path / "d"),
        "merge": invoke("merge", model, missing, "--take", "o", "--out", tmp_path / "m"),
        "merge usage": invoke("merge", model, model),  # no --take: a click usage error
        "destroy": invoke("destroy", model, "--method", "zero"),
        "destroy choice": invoke("destroy", model, "--method", "melt"),
        "plugin extract": invoke("plugin", "extract", model, missing, "--out", tmp_path / "p.safetensors"),
        "plugin apply": invoke("plugin", "apply", model, tmp_path / "no.safetensors", "--out", tmp_path / "a"),
        "freeze": invoke("freeze", model, "--train", "nope", "--data", tmp_path / "no.jsonl", "--out", tmp_path / "f"),
        "eval": invoke("eval", model, "--benchmark", "nope"),
        "report": invoke("report", tmp_path / "empty"),
        "make-pair": invoke("make-pair", tmp_path / "pair", "--shape", "huge"),
    }
    for name, result in failures.items():
        assert result.exit_code == 2, (name, result.output)
        assert "\nerror: " in "\n" + result.stderr, (name, result.stderr)
        assert "Error:" not in result.output and "Traceback" not in result.output, (name, result.output)
    assert not (tmp_path / "m").exists() and not (tmp_path / "pair").exists()


def test_interrupt_exits_130_and_says_what_was_kept(invoke, tiny_model_dir, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    merge_module = importlib.import_module("sfn.stethoscopes.surgery.merge")
    monkeypatch.setattr(merge_module, "merge", interrupted)
    model = tiny_model_dir("llama")
    result = invoke("merge", model, model, "--take", "o", "--out", tmp_path / "m")
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines()[-1] == "interrupted: stopped before the outputs were written; nothing was kept"


def test_a_standalone_command_follows_the_convention() -> None:
    from sfn.stethoscopes.surgery.cli import destroy_command

    result = CliRunner().invoke(destroy_command, ["model", "--method", "melt"])
    assert result.exit_code == 2 and result.stderr.strip().splitlines()[-1].startswith("error: Invalid value for '--method'")
