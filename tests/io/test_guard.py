"""The output guard: never an input, inside one or around one; --overwrite only over sfn's own outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfn.errors import SfnError
from sfn.io.guard import guard_output


@pytest.fixture
def model(tmp_path: Path) -> Path:
    directory = tmp_path / "models" / "m"
    directory.mkdir(parents=True)
    (directory / "model.safetensors").write_bytes(b"weights")
    return directory


@pytest.mark.parametrize(
    "relative, relation",
    [("models/m", "it is that input"), ("models/m/out", "it lies inside it"), ("models", "it contains it"), (".", "it contains it")],
)
def test_outputs_overlapping_a_directory_input(model: Path, tmp_path: Path, relative: str, relation: str) -> None:
    with pytest.raises(SfnError, match=f"overlaps the input .*{relation}"):
        guard_output(tmp_path / relative, inputs=[model], replace=False)


def test_an_input_given_twice_is_one_problem(model: Path) -> None:
    # `sfn delta B B --out B/out`: one line, not the same refusal twice
    with pytest.raises(SfnError) as refused:
        guard_output(model / "out", inputs=[model, model], replace=False)
    assert type(refused.value) is SfnError and str(refused.value).count("refusing") == 1


def test_a_file_input_may_have_siblings_but_not_be_written_or_contained(tmp_path: Path) -> None:
    data = tmp_path / "data" / "train.jsonl"
    data.parent.mkdir()
    data.write_text("{}\n")
    assert guard_output(tmp_path / "data" / "run", inputs=[data], replace=False) == (tmp_path / "data" / "run").resolve()
    for bad in (data, data.parent, tmp_path):
        with pytest.raises(SfnError, match="overlaps the input"):
            guard_output(bad, inputs=[data], replace=False, file=bad == data)


def test_symlinks_are_resolved_on_both_sides(model: Path, tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(model, target_is_directory=True)
    with pytest.raises(SfnError, match="overlaps the input"):
        guard_output(tmp_path / "alias" / "out", inputs=[model], replace=False)
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "model.safetensors").symlink_to(model / "model.safetensors")
    with pytest.raises(SfnError, match="overlaps the input"):
        guard_output(model, inputs=[snapshot], overwrite_any=True)


def test_hub_ids_and_missing_inputs_are_not_paths_to_guard(tmp_path: Path) -> None:
    assert guard_output(tmp_path / "out", inputs=["org/name", tmp_path / "nothing"]) == (tmp_path / "out").resolve()


def test_overwrite_replaces_only_what_sfn_wrote(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert guard_output(out) == out.resolve()  # empty: nothing to replace
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SfnError, match="is not empty; pass --overwrite"):
        guard_output(out)
    with pytest.raises(SfnError, match="--overwrite-any"):
        guard_output(out, overwrite=True)
    assert guard_output(out, overwrite_any=True) == out.resolve()
    (out / "sfn_provenance.json").write_text("{}")
    assert guard_output(out, overwrite=True) == out.resolve()
    assert guard_output(out, replace=False) == out.resolve()  # resuming commands keep what is there


def test_files_are_recognised_by_the_callers_test(tmp_path: Path) -> None:
    plugin = tmp_path / "p.safetensors"
    plugin.write_bytes(b"x")
    with pytest.raises(SfnError, match="exists; pass --overwrite"):
        guard_output(plugin, file=True)
    with pytest.raises(SfnError, match="is not an sfn output"):
        guard_output(plugin, file=True, overwrite=True, ours=lambda path: False)
    assert guard_output(plugin, file=True, overwrite=True, ours=lambda path: True) == plugin.resolve()
    with pytest.raises(SfnError, match="is not a file"):
        guard_output(tmp_path, file=True)
