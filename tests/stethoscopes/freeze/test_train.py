"""Freeze runs on a tiny model: frozen tensors untouched, tuned ones moved, loss down, outputs, resume."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from transformers import TrainerCallback

from sfn.errors import SfnErrors
from sfn.experiments import compare
from sfn.stethoscopes.freeze import freeze
from sfn.stethoscopes.freeze.cli import freeze_command

QUICK = dict(batch_size=4, seq_len=256, heldout=4, lr=1e-2, warmup_ratio=0.0, progress=False, report_overlay=False)


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "model.safetensors")


def test_frozen_tensors_bit_identical_and_tuned_ones_moved(tiny_freeze_model, reasoning_data: Path, tmp_path: Path) -> None:
    base = tiny_freeze_model("llama")
    result = freeze(str(base), "emb+head+o", str(reasoning_data), tmp_path / "run", max_steps=4, **QUICK)
    before, after = _weights(base), _weights(result.model_dir)
    trained = set(result.trainable.names)
    assert before.keys() == after.keys()
    for name in before:
        if name in trained:
            assert not torch.equal(before[name], after[name]), f"{name} should have moved"
        else:
            assert torch.equal(before[name], after[name]), f"frozen {name} changed"
    check = result.frozen_check
    assert check.ok and check.trainable_with_state == len(trained)
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert metrics["frozen_with_grad"] == [] and metrics["frozen_with_optimizer_state"] == []
    assert metrics["steps"] == 4 and metrics["trainable_parameters"] == result.trainable.trainable
    assert metrics["steps_per_second"] > 0 and metrics["tokens_per_second"] > 0 and metrics["peak_memory_bytes"] > 0
    loss = pd.read_csv(result.out_dir / "loss.csv")
    assert list(loss["step"]) == [1, 2, 3, 4]
    assert (result.out_dir / "loss.png").stat().st_size > 0


def test_a_few_steps_lower_the_loss(build_model, reasoning_data: Path, tmp_path: Path) -> None:
    from sfn.stethoscopes.surgery import read_plugin

    model, tokenizer = build_model()
    result = freeze((model, tokenizer), "all", str(reasoning_data), tmp_path / "run", max_steps=8, plugin=True, **QUICK)
    metrics = result.metrics
    assert metrics["heldout_loss"] < metrics["heldout_loss_before"] - 0.3
    assert result.loss["loss"].iloc[-1] < result.loss["loss"].iloc[0] - 0.3
    # an in-memory model is trained in place, and its plugin holds the trained values
    plugin = read_plugin(result.plugin_path)
    parameters = dict(model.named_parameters())
    assert plugin.tensors.keys() == parameters.keys()
    for name, tensor in plugin.tensors.items():
        assert torch.equal(tensor, parameters[name].detach())


def test_trained_model_loads_and_plugin_reproduces_it(tiny_freeze_model, reasoning_data: Path, tmp_path: Path) -> None:
    from sfn.io.load_model import load_model
    from sfn.stethoscopes.surgery import apply_plugin, read_plugin

    base = tiny_freeze_model("llama", tied=True)
    result = freeze(str(base), "emb+head+o", str(reasoning_data), tmp_path / "run", max_steps=2, plugin=True, **QUICK)
    assert any("tied embeddings" in note for note in result.metrics["notes"])
    loaded, tokenizer = load_model(result.model_dir)
    assert tokenizer is not None and loaded.config.tie_word_embeddings
    plugin = read_plugin(result.plugin_path)
    trained_elements = sum(t.numel() for t in plugin.tensors.values())
    assert trained_elements == result.trainable.trainable
    rebuilt = apply_plugin(base, plugin, tmp_path / "rebuilt")
    expected = _weights(result.model_dir)
    for name, tensor in _weights(rebuilt).items():
        assert torch.equal(tensor, expected[name]), name


class InterruptAt(TrainerCallback):
    """Sends this process a Ctrl-C (SIGINT) at the end of one step."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_leaves_a_checkpoint_and_resuming_matches_an_uninterrupted_run(
    tiny_freeze_model, reasoning_data: Path, tmp_path: Path
) -> None:
    base = str(tiny_freeze_model("llama"))
    settings = dict(max_steps=6, save_steps=100, **QUICK)
    stopped = freeze(base, "emb+head+qkvo", str(reasoning_data), tmp_path / "resumed", callbacks=[InterruptAt(2)], **settings)
    assert stopped.interrupted and stopped.model_dir is None
    checkpoints = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    assert checkpoints == [f"checkpoint-{stopped.metrics['steps']}"] and stopped.metrics["steps"] < 6
    resumed = freeze(base, "emb+head+qkvo", str(reasoning_data), tmp_path / "resumed", **settings)
    assert resumed.metrics["resumed_from"] == checkpoints[0] and resumed.metrics["steps"] == 6
    straight = freeze(base, "emb+head+qkvo", str(reasoning_data), tmp_path / "straight", **settings)
    resumed_weights, straight_weights = _weights(resumed.model_dir), _weights(straight.model_dir)
    for name, tensor in straight_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=0, atol=1e-6)
    assert list(resumed.loss["step"]) == list(range(1, 7))
    torch.testing.assert_close(torch.tensor(resumed.loss["loss"].values), torch.tensor(straight.loss["loss"].values))


def test_resume_refuses_other_settings(tiny_freeze_model, reasoning_data: Path, tmp_path: Path) -> None:
    base = str(tiny_freeze_model("llama"))
    freeze(base, "emb+head", str(reasoning_data), tmp_path / "run", max_steps=1, **QUICK)
    with pytest.raises(Exception, match="other settings.*train"):
        freeze(base, "all", str(reasoning_data), tmp_path / "run", max_steps=1, **QUICK)


def test_every_setting_problem_is_reported_at_once(build_model) -> None:
    with pytest.raises(SfnErrors) as error:
        freeze(build_model(), "o", None, None, batch_size=0, lr=-1.0, prompt_format="xml")
    assert len(error.value.problems) == 5


def test_compare_writes_table_and_overlay(build_model, reasoning_data: Path, tmp_path: Path) -> None:
    table, runs = compare(build_model(), ["emb+head", "all"], str(reasoning_data), tmp_path / "cmp", max_steps=2,
                          **{**QUICK, "report_overlay": True})
    assert list(table["preset"]) == ["emb+head", "all"]
    assert table["trainable params"].iloc[0] < table["trainable params"].iloc[1]
    assert "speed vs all" in table.columns
    for name in ("compare.csv", "compare.md", "loss.png"):
        assert (tmp_path / "cmp" / name).is_file()
    # both runs started from the same weights and data order: the first step's loss is the same
    assert runs[0].loss["loss"].iloc[0] == pytest.approx(runs[1].loss["loss"].iloc[0], abs=1e-6)


def test_cli(tiny_freeze_model, reasoning_data: Path, tmp_path: Path) -> None:
    args = [str(tiny_freeze_model("llama")), "--train", "o", "--data", str(reasoning_data), "--out", str(tmp_path / "o"),
            "--max-steps", "2", "--batch-size", "4", "--seq-len", "256", "--heldout", "4", "--no-progress"]
    result = CliRunner().invoke(freeze_command, args)
    assert result.exit_code == 0, result.output
    assert "trained" in result.output and "steps/s" in result.output
    bad = CliRunner().invoke(freeze_command, [*args[:1], "--train", "nope", *args[3:]])
    assert bad.exit_code == 2 and "unknown module 'nope'" in bad.output


def test_heldout_score_from_sfn_evaluate(build_model, reasoning_data: Path, tmp_path: Path) -> None:
    test_file = tmp_path / "test.jsonl"
    test_file.write_text("".join(json.dumps({"question": f"What is {i} plus 1?", "answer": f"#### {i + 1}"}) + "\n" for i in range(3)))
    result = freeze(build_model(), "emb+head+o", str(reasoning_data), tmp_path / "run", max_steps=1, eval_benchmark="gsm8k",
                    eval_data=str(test_file), eval_limit=2, eval_max_new_tokens=4, **QUICK)
    score = result.metrics["heldout_score"]
    assert score["benchmark"] == "gsm8k" and score["samples"] == 2 and 0 <= score["accuracy"] <= 1
    assert (result.out_dir / "eval.json").is_file() and len((result.out_dir / "eval_samples.jsonl").read_text().splitlines()) == 2


def test_cli_interrupted_run_exits_130(tiny_freeze_model, reasoning_data: Path, tmp_path: Path, monkeypatch) -> None:
    from sfn.stethoscopes.freeze.callbacks import InterruptCallback

    begin = InterruptCallback.on_train_begin

    def ctrl_c_at_start(self, *args, **kwargs):  # as if Ctrl-C came during the first step
        result = begin(self, *args, **kwargs)
        self._requested = True
        return result

    monkeypatch.setattr(InterruptCallback, "on_train_begin", ctrl_c_at_start)
    args = [str(tiny_freeze_model("llama")), "--train", "o", "--data", str(reasoning_data), "--out", str(tmp_path / "o"),
            "--max-steps", "3", "--batch-size", "4", "--seq-len", "256", "--heldout", "4", "--no-progress"]
    result = CliRunner().invoke(freeze_command, args)
    assert result.exit_code == 130, result.output
    assert "interrupted: the last checkpoint in --out holds the model so far" in result.stderr
    assert (tmp_path / "o" / "checkpoints" / "checkpoint-1").is_dir()
