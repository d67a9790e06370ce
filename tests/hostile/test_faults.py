"""Faults: a killed run's leftovers, a full disk, a finished or damaged freeze run, pickles opted into."""

from __future__ import annotations

import errno
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from hostile.hostile_inputs import arithmetic_rows, listing, tree_digest, write_jsonl
from sfn.cli import main
from sfn.errors import SfnError
from sfn.io.writer import ShardedSafetensorsWriter
from sfn.stethoscopes.surgery import destroy, extract_plugin, merge

NO_SPACE = re.compile(r"no space left on .+ while writing .+; nothing was written")


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_partials_of_a_killed_run_are_removed_and_reported(pair, tmp_path: Path, caplog) -> None:
    base, donor = pair
    stale = tmp_path / ".out.k1ll3d.partial"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half a model")
    (stale / ".sfn-partial").write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    foreign = tmp_path / ".out.notours.partial"  # no marker: not sfn's to delete
    foreign.mkdir()
    stale_plugin = tmp_path / f".o.safetensors.sfn-{_dead_pid()}-{socket.gethostname()}.partial"
    stale_plugin.write_bytes(b"half a plugin")
    with caplog.at_level(logging.WARNING, logger="sfn"):
        merge(base, donor, "o", tmp_path / "out")
        extract_plugin(base, donor, "o", tmp_path / "o.safetensors")
    assert not stale.exists() and not stale_plugin.exists() and foreign.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.notours.partial", "o.safetensors", "out"]
    removed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("removed")]
    assert len(removed) == 2 and str(stale) in removed[0] + removed[1]
    assert ".sfn-partial" not in listing(tmp_path / "out")


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_line_and_leaves_nothing(pair, tmp_path: Path, monkeypatch) -> None:
    base, donor = pair
    before = tree_digest(base)
    monkeypatch.setattr(ShardedSafetensorsWriter, "_pwrite", _no_space)
    for run in (lambda: merge(base, donor, "o", tmp_path / "out"), lambda: destroy(base, "o", tmp_path / "out")):
        with pytest.raises(SfnError) as error:
            run()
        assert NO_SPACE.fullmatch(str(error.value)) and str(tmp_path / "out") in str(error.value)
        assert listing(tmp_path) == []
    result = CliRunner().invoke(main, ["merge", str(base), str(donor), "--take", "o", "--out", str(tmp_path / "out")])
    # What is left once the progress bar has cleared its line: one line of message, no traceback.
    lines = [line for line in re.split(r"[\r\n]", result.output) if line.strip() and "tensor/s" not in line]
    assert result.exit_code != 0 and len(lines) == 1 and NO_SPACE.search(lines[0]), result.output
    assert listing(tmp_path) == [] and tree_digest(base) == before


def test_a_full_disk_while_writing_a_plugin_leaves_nothing(pair, tmp_path: Path, monkeypatch) -> None:
    def half_then_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        _no_space()

    monkeypatch.setattr("sfn.stethoscopes.surgery.plugin.save_file", half_then_full)
    with pytest.raises(SfnError) as error:
        extract_plugin(pair[0], pair[1], "o", tmp_path / "o.safetensors")
    assert NO_SPACE.fullmatch(str(error.value)) and listing(tmp_path) == []


def _pickled(model_dir: Path, out: Path) -> Path:
    """`model_dir` with its weights as a pickled pytorch_model.bin instead of safetensors."""
    shutil.copytree(model_dir, out, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save(load_file(model_dir / "model.safetensors"), out / "pytorch_model.bin")
    return out


def test_allow_pickle_is_accepted_where_the_refusal_suggests_it(pair, chat_model, tmp_path: Path) -> None:
    base = _pickled(pair[0], tmp_path / "pickled")
    donor = pair[1]
    runner = CliRunner()
    commands = {
        "merge": ["merge", str(base), str(donor), "--take", "o", "--out", str(tmp_path / "merged")],
        "destroy": ["destroy", str(base), "--select", "o@0", "--out", str(tmp_path / "destroyed")],
        "plugin": ["plugin", "extract", str(base), str(donor), "--select", "o", "--out", str(tmp_path / "o.safetensors")],
    }
    for name, args in commands.items():
        refused = runner.invoke(main, args)
        assert refused.exit_code != 0 and "--allow-pickle" in refused.output, name
        accepted = runner.invoke(main, [*args, "--allow-pickle"])
        assert accepted.exit_code == 0, (name, accepted.output)
    assert (tmp_path / "merged" / "sfn_provenance.json").is_file() and (tmp_path / "o.safetensors").is_file()

    chat = _pickled(chat_model, tmp_path / "pickled-chat")
    data = write_jsonl(tmp_path / "test.jsonl", arithmetic_rows(1))
    evaluate = ["eval", str(chat), "--data", str(data), "--limit", "1", "--max-new-tokens", "1", "--no-levels"]
    refused = runner.invoke(main, evaluate)
    assert refused.exit_code != 0 and "--allow-pickle" in refused.output
    accepted = runner.invoke(main, [*evaluate, "--allow-pickle"])
    assert accepted.exit_code == 0, accepted.output
    assert "--allow-pickle" in runner.invoke(main, ["freeze", "--help"]).output


FREEZE = dict(heldout=2, batch_size=2, seq_len=256, progress=False, report_overlay=False, lr=1e-3)


@pytest.mark.slow
def test_rerunning_a_finished_freeze_reports_it_and_leaves_it_alone(chat_model, tmp_path: Path) -> None:
    from sfn.stethoscopes.freeze import freeze

    data = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8))
    out = tmp_path / "run"
    first = freeze(str(chat_model), "emb+head", str(data), out, max_steps=2, save_steps=1, **FREEZE)
    assert first.metrics["steps"] == 2
    before = tree_digest(out)
    again = freeze(str(chat_model), "emb+head", str(data), out, max_steps=2, save_steps=1, **FREEZE)
    assert again.metrics["already_finished"] and again.metrics["steps"] == 2
    assert any("already holds this run" in note for note in again.metrics["notes"])
    assert again.trainable.names == first.trainable.names and list(again.loss["step"]) == [1, 2]
    assert tree_digest(out) == before


@pytest.mark.slow
def test_a_truncated_last_checkpoint_falls_back_to_the_one_before(chat_model, tmp_path: Path, caplog) -> None:
    from sfn.stethoscopes.freeze import freeze

    data = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8))
    out = tmp_path / "run"
    freeze(str(chat_model), "emb+head", str(data), out, max_steps=4, save_steps=2, **FREEZE)
    # As if killed while writing the last checkpoint: no final model, the checkpoint's weights cut short.
    shutil.rmtree(out / "model")
    (out / "metrics.json").unlink()
    weights = out / "checkpoints" / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="sfn"):
        resumed = freeze(str(chat_model), "emb+head", str(data), out, max_steps=4, save_steps=2, **FREEZE)
    assert resumed.metrics["resumed_from"] == "checkpoint-2" and resumed.metrics["steps"] == 4
    assert any("checkpoint-4 is damaged" in note for note in resumed.metrics["notes"])
    assert any("checkpoint-4 is damaged" in r.getMessage() for r in caplog.records)


def test_a_full_disk_while_delta_writes_leaves_an_earlier_run_whole(pair, tmp_path: Path, monkeypatch) -> None:
    from sfn.stethoscopes import delta as delta_package
    from sfn.stethoscopes.delta import write_outputs

    base, donor = pair
    result = delta_package.delta(base, donor, "o")
    fresh, rerun = tmp_path / "fresh", tmp_path / "rerun"
    write_outputs(result, rerun, plots=False)
    earlier = tree_digest(rerun)
    monkeypatch.setattr("sfn.stethoscopes.delta.summary.np.savez_compressed", _no_space)
    for out in (fresh, rerun):
        with pytest.raises(SfnError) as error:
            write_outputs(result, out, plots=False)
        assert NO_SPACE.fullmatch(str(error.value)) and str(out) in str(error.value)
    assert not fresh.exists() and tree_digest(rerun) == earlier  # delta.csv was not half rewritten either
    cli = CliRunner().invoke(main, ["delta", str(base), str(donor), "--select", "o", "--out", str(fresh), "--no-plots"])
    lines = [line for line in re.split(r"[\r\n]", cli.output) if line.strip() and "/s]" not in line]
    assert cli.exit_code == 2 and len(lines) == 1 and NO_SPACE.search(lines[0]), cli.output
    assert not fresh.exists()


def test_a_full_disk_while_eval_appends_keeps_whole_samples_and_resumes(chat_model, tmp_path: Path, monkeypatch) -> None:
    import os

    from sfn.eval import evaluate

    data = write_jsonl(tmp_path / "test.jsonl", arithmetic_rows(4))
    out = tmp_path / "run"
    real_write, appended = os.write, []

    def full_on_the_third_sample(handle: int, data: bytes) -> int:
        if b'"id"' not in bytes(data):
            return real_write(handle, data)
        appended.append(data)
        if len(appended) == 3:  # half a line reaches the disk, then it is full
            real_write(handle, bytes(data)[: len(data) // 2])
            _no_space()
        return real_write(handle, data)

    settings = dict(benchmark="gsm8k", data=str(data), out=str(out), max_new_tokens=2, grade_levels=False,
                    progress=False, batch_size=1)
    monkeypatch.setattr(os, "write", full_on_the_third_sample)
    with pytest.raises(SfnError) as error:
        evaluate(str(chat_model), **settings)
    monkeypatch.undo()
    message = str(error.value)
    assert re.fullmatch(r"no space left on .+ while writing .+/run/samples\.jsonl; the 2 samples before it are kept; .+", message)
    lines = (out / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["id"] for line in lines)  # no torn third line
    assert not (out / "summary.json").exists()
    resumed = evaluate(str(chat_model), **settings)
    assert len(resumed.samples) == 4 and len((out / "samples.jsonl").read_text().splitlines()) == 4


@pytest.mark.slow
def test_a_full_disk_while_freeze_saves_is_one_line(chat_model, tmp_path: Path, monkeypatch) -> None:
    import transformers

    from sfn.stethoscopes.freeze import freeze

    data = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8))
    out = tmp_path / "run"

    def half_then_full(self, output_dir=None, *args, **kwargs):
        Path(output_dir).mkdir(parents=True)
        (Path(output_dir) / "model.safetensors").write_bytes(b"half")
        _no_space()

    monkeypatch.setattr(transformers.Trainer, "save_model", half_then_full)
    with pytest.raises(SfnError) as error:
        freeze(str(chat_model), "emb+head", str(data), out, max_steps=1, save_steps=5, **FREEZE)
    # Trainer saves the model with its last checkpoint, inside train(): one line, no traceback.
    message = str(error.value)
    assert re.fullmatch(r"no space left on .+ while writing .+/run; the whole checkpoints written before are kept; .+", message)
    assert "\n" not in message and not (out / "model").exists()
