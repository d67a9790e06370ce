"""The command line, run through click's test runner in temporary folders."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sfn.cli import main


def test_make_pair_then_delta_finds_the_bimodal_o_proj(tmp_path):
    runner = CliRunner()
    made = runner.invoke(main, ["make-pair", str(tmp_path / "pair")])
    assert made.exit_code == 0, made.output
    result = runner.invoke(
        main, ["delta", str(tmp_path / "pair/base"), str(tmp_path / "pair/tuned"), "--out", str(tmp_path / "delta"), "--every", "2"]
    )
    assert result.exit_code == 0, result.output
    ranking = result.output.split("rank", 1)[1].splitlines()
    assert ranking[1].split()[:2] == ["1", "o"]
    summary = json.loads((tmp_path / "delta/summary.json").read_text())
    assert summary["kinds"]["o"]["bimodal_layers"] == summary["kinds"]["o"]["layers"] == 6
    assert sum(k["bimodal_layers"] for k in summary["kinds"].values()) == 6
    for name in ("delta.csv", "norms.png", "histograms.png", "heatmap.png"):
        assert (tmp_path / "delta" / name).stat().st_size > 0


def test_modules_lists_what_a_selector_matches(tiny_model_dir):
    result = CliRunner().invoke(main, ["modules", str(tiny_model_dir("phi3")), "--select", "q", "--layers", "-1", "--selected-only"])
    assert result.exit_code == 0, result.output
    assert "model.layers.3.self_attn.qkv_proj.weight" in result.output and "rows 0:32" in result.output
    assert "matches 1 parts in 1 tensors" in result.output


def test_bad_selector_is_a_clear_error_without_traceback(tiny_model_dir):
    result = CliRunner().invoke(main, ["modules", str(tiny_model_dir("llama")), "--select", "o,bogus,re:("])
    assert result.exit_code == 2
    assert "unknown module 'bogus'" in result.output and "does not compile" in result.output
    assert "Traceback" not in result.output


def test_delta_refuses_mismatched_models(tiny_model_dir, tmp_path):
    result = CliRunner().invoke(main, ["delta", str(tiny_model_dir("llama")), str(tiny_model_dir("gpt2")), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "architecture differs" in result.output
    assert not (tmp_path / "delta.csv").exists()


def test_bad_clip_text_is_reported(tiny_model_dir, tmp_path):
    model = str(tiny_model_dir("llama"))
    result = CliRunner().invoke(main, ["delta", model, model, "--out", str(tmp_path), "--clip", "wide"])
    assert result.exit_code == 2 and "--clip" in result.output


def _commands(group, ctx, prefix=()):
    import click

    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _commands(command, ctx, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_takes_quiet_and_verbose():
    import click

    ctx = click.Context(main)
    commands = dict(_commands(main, ctx))
    assert {("demo",), ("eval",), ("freeze",), ("organism", "data"), ("plugin", "apply")} <= set(commands)
    for name, command in commands.items():
        flags = {flag for param in command.params for flag in getattr(param, "opts", [])}
        assert {"--quiet", "-q", "--verbose", "-v"} <= flags, name


def test_quiet_drops_the_progress_bar_and_verbose_with_quiet_is_refused(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["make-pair", str(tmp_path / "pair")]).exit_code == 0
    arguments = ["delta", str(tmp_path / "pair/base"), str(tmp_path / "pair/tuned"), "--out", str(tmp_path / "d"), "--no-plots"]
    loud = runner.invoke(main, arguments)
    quiet = runner.invoke(main, [*arguments, "--quiet"])
    assert loud.exit_code == quiet.exit_code == 0
    assert "delta:" in loud.stderr and "delta:" not in quiet.stderr  # the tqdm bar, on stderr
    assert quiet.stdout == loud.stdout  # the result itself is the same
    both = runner.invoke(main, [*arguments, "-q", "-v"])
    assert both.exit_code == 2 and "contradict" in both.output
