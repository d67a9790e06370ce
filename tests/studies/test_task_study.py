"""The second SmolLM2 study (issue 19), end to end on a tiny model (its `smoke_task` profile): the
held-out, training and probe problems are disjoint, every job runs (seeds, alpha, map, the map's best
cells, the destruction check), the README renders every table, and `sfn report` reads the results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

STUDY = Path(__file__).resolve().parents[2] / "studies" / "smollm2"
sys.path.insert(0, str(STUDY))

from study_settings import SMOKE_TASK, TWO_STEP  # noqa: E402


@pytest.fixture(scope="module")
def study(tiny_base, tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    cache, out = tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("out")
    command = [sys.executable, str(STUDY / "run_study.py"), "--profile", "smoke_task", "--base", str(tiny_base),
               "--cache", str(cache), "--out", str(out)]
    return cache, out, subprocess.run(command, capture_output=True, text=True, timeout=600)


def questions(path: Path) -> list[str]:
    return [json.loads(line)["question"] for line in path.read_text().splitlines()]


def test_the_study_problems_share_no_question():
    from tasks import probe_rows

    held_out, training = TWO_STEP.task_split()
    assert (len(held_out), len(training)) == (500, 544)
    probe = probe_rows("two_step", 32, 3, held_out + training)
    asked = {row["prompt"].rsplit("Question: ", 1)[1].removesuffix("\nAnswer:") for row in probe}
    assert len(asked) == 32
    assert not {r["question"] for r in held_out} & {r["question"] for r in training}
    assert not asked & ({r["question"] for r in held_out} | {r["question"] for r in training})
    # The few-shot examples of the evaluation prompt are none of them either.
    template = TWO_STEP.evaluation("held_out.jsonl")["plain_template"]
    assert not any(f"Question: {r['question']}\n" in template for r in held_out + training)


def test_every_job_runs_and_the_data_files_are_disjoint(study):
    cache, out, done = study
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = {json.loads(path.read_text())["job"] for path in (cache / "jobs").glob("*/done.json")}
    assert {"map", "train:all#1", "eval:all, seed 1", "eval:B + 0.5 x R's o", "eval:map #1", "eval:B + R's norms"} <= jobs
    assert len(jobs) == 3 + len(SMOKE_TASK.runs()) + len(SMOKE_TASK.variants()) + 2  # base, data, map; delta, destroy
    data = cache / "jobs" / "data"
    test, train = questions(data / "test.jsonl"), questions(data / "train.jsonl")
    assert (len(test), len(train)) == (SMOKE_TASK.eval_limit, SMOKE_TASK.train_examples)
    assert not set(test) & set(train)


def test_the_maps_best_cells_are_what_was_evaluated_and_destroyed(study):
    cache, out, _ = study
    table = pd.read_csv(cache / "jobs" / "map" / "map" / "map.csv", keep_default_na=False, na_values=[""])
    cells = table[(table["mode"] == "transplant") & (table["layers"] != "all") & (table["probe"] == "two_step")]
    best = cells.sort_values("recovered_share", ascending=False, kind="stable").iloc[0]
    evaluated = json.loads((cache / "jobs" / "eval-map_#1" / "done.json").read_text())
    assert evaluated["taken"] == f"{best['kind']}@{best['layers']}"
    zero = table[(table["mode"] == "zero") & (table["layers"] != "all") & (table["probe"] == "conversation")]
    most = zero.sort_values("kl_to_base", ascending=False, kind="stable").iloc[0]
    least = zero.sort_values("kl_to_base", ascending=True, kind="stable").iloc[0]  # ties: the first in map order
    destroyed = pd.read_csv(out / "results" / "destruction" / "destruction.csv", keep_default_na=False, dtype=str)
    checked = set(destroyed["kind"] + "@" + destroyed["layers"])
    for cell in (most, least):
        assert f"{cell['kind']}@{cell['layers']}" in checked
    assert destroyed.duplicated(["method", "kind", "layers", "prompt"]).sum() == 0


def test_the_readme_and_the_report_hold_every_section(study):
    cache, out, _ = study
    readme = (out / "README.md").read_text()
    assert "{{" not in readme
    for text in ("| B + R's norms |", "| B + 0.5 x R's o |", "(map #1) |", "| emb+head+o |", "| two_step (3-shot) |",
                 "| nothing (B) |", "results/map/map_transplant_two_step.png", "stable rank"):
        assert text in readme, text
    index = json.loads((out / "results" / "demo.json").read_text())
    assert index["map"]["probe"] == "map/two_step.jsonl" and (out / "results" / "map" / "two_step.jsonl").is_file()
    report = (out / "results" / "report.md").read_text()
    assert "## Map" in report and "map_transplant_two_step" in report
