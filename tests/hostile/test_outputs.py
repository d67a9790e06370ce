"""No command writes over, into or around its own input, and --overwrite replaces only what sfn wrote."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostile.hostile_inputs import arithmetic_rows, tree_digest, write_jsonl
from sfn.cli import main
from sfn.errors import SfnError
from sfn.stethoscopes.surgery import extract_plugin, merge


def test_plugin_extract_over_the_base_weights_is_refused(own_pair) -> None:
    base, tuned = own_pair
    before = tree_digest(base)
    result = CliRunner().invoke(
        main, ["plugin", "extract", str(base), str(tuned), "--select", "o", "--out", str(base / "model.safetensors"), "--overwrite"]
    )
    assert result.exit_code != 0 and "overlaps the input" in result.output
    assert tree_digest(base) == before


def test_plugin_extract_replaces_only_a_plugin_without_overwrite_any(own_pair, tmp_path: Path) -> None:
    base, tuned = own_pair
    notes = tmp_path / "notes.safetensors"
    notes.write_bytes(b"my own file")
    with pytest.raises(SfnError, match="not an sfn output"):
        extract_plugin(base, tuned, "o", notes, overwrite=True)
    assert notes.read_bytes() == b"my own file"
    extract_plugin(base, tuned, "o", notes, overwrite_any=True)
    extract_plugin(base, tuned, "o", notes, overwrite=True)  # an sfn plugin now


def test_delta_into_the_model_directory_or_around_it_is_refused(own_pair) -> None:
    base, tuned = own_pair
    before = tree_digest(base.parent)
    for out in (base, base / "delta", base.parent):
        result = CliRunner().invoke(main, ["delta", str(base), str(tuned), "--out", str(out), "--no-plots"])
        assert result.exit_code != 0 and "overlaps the input" in result.output, out
    assert tree_digest(base.parent) == before


def test_an_output_that_holds_an_inputs_files_through_symlinks_is_refused(own_pair, tmp_path: Path) -> None:
    """A Hugging Face cache snapshot links each file to a blob elsewhere: writing over the blobs, even with
    --overwrite-any, would destroy the model."""
    from sfn.io.guard import guard_output

    base, donor = own_pair
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for path in base.iterdir():
        (snapshot / path.name).symlink_to(path)
    before = tree_digest(base)
    with pytest.raises(SfnError, match="overlaps the input"):
        merge(snapshot, donor, "o", base, overwrite_any=True)
    link = tmp_path / "innocent"
    link.symlink_to(base, target_is_directory=True)
    with pytest.raises(SfnError, match="overlaps the input"):
        guard_output(link, inputs=[snapshot], replace=False)
    assert tree_digest(base) == before


def test_overwrite_leaves_a_directory_sfn_did_not_write(pair, tmp_path: Path) -> None:
    base, donor = pair
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "thesis.tex").write_text("years of work")
    result = CliRunner().invoke(main, ["merge", str(base), str(donor), "--take", "o", "--out", str(papers), "--overwrite"])
    assert result.exit_code != 0 and "--overwrite-any" in result.output
    assert (papers / "thesis.tex").read_text() == "years of work" and sorted(os.listdir(papers)) == ["thesis.tex"]
    assert sorted(os.listdir(tmp_path)) == ["papers"]  # no partial left either


def test_freeze_into_a_folder_holding_the_model_is_refused(chat_model, tmp_path: Path) -> None:
    from sfn.stethoscopes.freeze import freeze

    data = write_jsonl(tmp_path / "train.jsonl", arithmetic_rows(8))
    before = tree_digest(chat_model)
    for out in (chat_model, chat_model.parent):
        with pytest.raises(SfnError, match="overlaps the input"):
            freeze(str(chat_model), "emb+head", str(data), out, max_steps=1, heldout=2, batch_size=2, progress=False)
    with pytest.raises(SfnError, match="overlaps the input"):
        freeze(str(chat_model), "emb+head", str(data), data, max_steps=1, heldout=2, batch_size=2, progress=False)
    assert tree_digest(chat_model) == before


def test_eval_into_the_model_directory_is_refused(chat_model, tmp_path: Path) -> None:
    from sfn.eval import evaluate

    data = write_jsonl(tmp_path / "test.jsonl", arithmetic_rows(2))
    before = tree_digest(chat_model)
    with pytest.raises(SfnError, match="overlaps the input"):
        evaluate(str(chat_model), benchmark="gsm8k", data=str(data), out=str(chat_model / "eval"), limit=1,
                 max_new_tokens=2, grade_levels=False, progress=False)
    assert tree_digest(chat_model) == before
