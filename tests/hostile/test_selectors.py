"""An empty or blank selector (an unset "$SEL") is an error everywhere, never "every module"."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hostile.hostile_inputs import tree_digest
from sfn.cli import main
from sfn.errors import SfnError
from sfn.stethoscopes.surgery import destroy, extract_plugin, merge

BLANKS = ["", " ", "\t"]


@pytest.mark.parametrize("take", BLANKS)
def test_merge_with_a_blank_take_writes_nothing(pair, tmp_path: Path, take: str) -> None:
    base, donor = pair
    before = tree_digest(base.parent)
    with pytest.raises(SfnError, match="is empty"):
        merge(base, donor, take, tmp_path / "out")
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
    assert tree_digest(base.parent) == before


@pytest.mark.parametrize("select", BLANKS)
def test_destroy_with_a_blank_select_zeroes_nothing(pair, tmp_path: Path, select: str) -> None:
    before = tree_digest(pair[0])
    with pytest.raises(SfnError, match="is empty"):
        destroy(pair[0], select, tmp_path / "out", method="zero")
    assert list(tmp_path.iterdir()) == [] and tree_digest(pair[0]) == before


@pytest.mark.parametrize("select", BLANKS)
def test_plugin_extract_with_a_blank_select_takes_nothing(pair, tmp_path: Path, select: str) -> None:
    with pytest.raises(SfnError, match="is empty"):
        extract_plugin(pair[0], pair[1], select, tmp_path / "plugin.safetensors")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        ["merge", "{base}", "{donor}", "--take", " ", "--out", "{out}"],
        ["destroy", "{base}", "--select", " ", "--method", "zero", "--out", "{out}"],
        ["plugin", "extract", "{base}", "{donor}", "--select", "", "--out", "{out}/p.safetensors"],
        ["modules", "{base}", "--select", " "],
        ["delta", "{base}", "{donor}", "--select", "", "--out", "{out}"],
    ],
    ids=["merge", "destroy", "plugin-extract", "modules", "delta"],
)
def test_every_command_refuses_a_blank_selector(pair, tmp_path: Path, command: list[str]) -> None:
    base, donor = pair
    args = [a.format(base=base, donor=donor, out=tmp_path / "out") for a in command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and "is empty" in result.output
    assert not (tmp_path / "out").exists()


def test_the_word_all_still_selects_everything(pair, tmp_path: Path) -> None:
    result = merge(pair[0], pair[1], "all", dry_run=True)
    assert set(result.plan.frame()["source"]) == {"donor"}
