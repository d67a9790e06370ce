"""The commands the demo writes into its report redo its stages: run the quick ones on the organism
and compare with the numbers the demo wrote."""

from __future__ import annotations

import html
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sfn.experiments.merge_table import MERGE_VARIANTS


def run_command(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run one printed command as a user would, with this checkout's sfn (`python -m sfn.cli`)."""
    words = shlex.split(command)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[0] == "sfn", command
    result = subprocess.run([sys.executable, "-m", "sfn.cli", *words[1:]], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def index(demo_dir: Path) -> dict:
    return json.loads((demo_dir / "demo.json").read_text())


@pytest.mark.slow
def test_every_stage_has_its_commands_in_the_report(demo_dir, index):
    commands = index["commands"]
    assert set(commands["merge"]) == {label for label, _, _ in MERGE_VARIANTS}
    assert set(commands) == {"delta", "merge", "map", "destruction", "freeze"}
    page, markdown = (demo_dir / "report.html").read_text(), (demo_dir / "report.md").read_text()
    for stage in commands.values():
        for lines in stage.values():
            for line in lines:
                assert shlex.split(line)  # one shell line each
                assert line in markdown
                assert html.escape(line) in page
    freeze = commands["freeze"]["all presets"]
    assert freeze[0].startswith("sfn organism data --out ")  # R's data without a demo run
    assert "--response-template '{reasoning}\\nThe final answer is {answer}.'" in freeze[1]


@pytest.mark.slow
@pytest.mark.parametrize("label", ["B + R's o", "R"])
def test_merge_row_commands_reproduce_the_row(demo_dir, index, label):
    for command in index["commands"]["merge"][label]:
        result = run_command(command, demo_dir)
    summary = json.loads(result.stdout[result.stdout.index("{"): result.stdout.rindex("}") + 1])
    row = pd.read_csv(demo_dir / "merge" / "merge.csv", keep_default_na=False).set_index("variant").loc[label]
    assert summary["samples"] == row["samples"]
    assert summary["accuracy"] == pytest.approx(row["accuracy"], abs=1e-12)
    assert summary["mean_output_tokens"] == pytest.approx(row["mean_tokens"], abs=1e-9)
    for level in ("I", "II", "III", "IV"):
        assert summary["levels"].get(level, 0) == row[f"level_{level}"], level


@pytest.mark.slow
def test_organism_data_command_writes_the_demos_training_data(demo_dir, index, tmp_path):
    command = index["commands"]["freeze"]["all presets"][0]
    run_command(command.replace(shlex.split(command)[-1], str(tmp_path / "train.jsonl")), demo_dir)
    assert (tmp_path / "train.jsonl").read_bytes() == (demo_dir / "train.jsonl").read_bytes()


@pytest.mark.slow
def test_freeze_command_reproduces_a_preset(demo_dir, index):
    """One preset of the printed `--compare` (each preset trains alone from the same weights and seed)."""
    data_command, freeze_command = index["commands"]["freeze"]["all presets"]
    run_command(data_command, demo_dir)
    words = shlex.split(freeze_command)
    words[words.index("--compare") + 1] = "emb+head+o"
    result = run_command(shlex.join(words), demo_dir)
    assert "emb+head+o" in result.stdout
    out = Path(words[words.index("--out") + 1])
    mine = pd.read_csv(out / "compare.csv").iloc[0]
    demo = pd.read_csv(demo_dir / "freeze" / "compare.csv").set_index("preset").loc["emb+head+o"]
    for column in ("trainable params", "held-out accuracy"):
        assert mine[column] == demo[column], column
    for column in ("held-out loss", "final train loss"):
        assert mine[column] == pytest.approx(demo[column], rel=1e-5), column


@pytest.mark.slow
def test_map_command_reproduces_the_map(demo_dir, index):
    (command,) = index["commands"]["map"]["the map"]
    run_command(command, demo_dir)
    out = Path(shlex.split(command)[shlex.split(command).index("--out") + 1])
    columns = ["mode", "kind", "layers", "kl_to_base", "kl_to_tuned", "recovered_share"]
    by_hand = pd.read_csv(out / "map.csv")[columns]
    demo = pd.read_csv(demo_dir / "map" / "map.csv")[columns]
    pd.testing.assert_frame_equal(by_hand, demo, rtol=1e-6)


@pytest.mark.slow
def test_map_finding_agrees_with_its_table(demo_dir):
    table = pd.read_csv(demo_dir / "map" / "map.csv")
    best = table[(table["mode"] == "transplant") & (table["layers"] != "all")].sort_values("recovered_share").iloc[-1]
    finding = next(line for line in (demo_dir / "report.md").read_text().split("## Map", 1)[1].splitlines()
                   if line.startswith("> **Finding.**"))
    assert f"R's {best['kind']} in layers {best['layers']} alone" in finding
    assert f"closes {100 * best['recovered_share']:.0f}%" in finding


@pytest.mark.slow
def test_destruction_commands_reproduce_the_cells_outputs_and_levels(demo_dir, index):
    destroy, evaluate = index["commands"]["destruction"]["zero o"]
    run_command(destroy, demo_dir)
    run_command(evaluate, demo_dir)
    out = Path(shlex.split(evaluate)[shlex.split(evaluate).index("--out") + 1])
    by_hand = pd.read_json(out / "samples.jsonl", lines=True, dtype=False)
    cells = pd.read_csv(demo_dir / "destruction" / "destruction.csv", keep_default_na=False)
    cell = cells[(cells["method"] == "zero") & (cells["kind"] == "o")].sort_values("prompt")
    assert len(by_hand) == len(cell) > 0
    assert by_hand["output"].tolist() == cell["output"].tolist()
    assert by_hand["level"].tolist() == cell["level"].tolist()
