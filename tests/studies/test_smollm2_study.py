"""The SmolLM2 study's script, end to end on a tiny model (its `smoke` profile): every job runs,
the results folder is one `sfn report` reads, README.md is rendered with every table, and a rerun
redoes only what is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import SHARED_DATA

STUDY = Path(__file__).resolve().parents[2] / "studies" / "smollm2"

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "gsm8k" / "train.jsonl").is_file(), reason="needs ../shared/data/gsm8k")


def run_study(base: Path, cache: Path, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(STUDY / "run_study.py"), "--profile", "smoke", "--base", str(base),
               "--cache", str(cache), "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def study(tiny_base, tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    cache, out = tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("out")
    return cache, out, run_study(tiny_base, cache, out)


def test_every_job_runs_and_the_readme_holds_every_table(study):
    cache, out, first = study
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = sorted(path.parent.name for path in (cache / "jobs").glob("*/done.json"))
    assert len(jobs) == 16 and "train-all" in jobs and "eval-B___Rs_o" in jobs
    readme = (out / "README.md").read_text()
    assert "{{" not in readme
    for row in ("| B + R's o |", "| B + R's q,k,v |", "| B + R's mlp |", "| R |", "| emb+head+qkvo |", "| whole layer |"):
        assert row in readme
    index = json.loads((out / "results" / "demo.json").read_text())
    assert index["destruction"] == {"table": "destruction/destruction.csv", "layers": "1-2", "model": "B"}
    assert (out / "results" / "report.html").is_file() and (out / "results" / "delta" / "norms.png").is_file()
    # Every exported sample keeps its extracted answers and the strict and flexible verdicts.
    for exported in ("merge/samples.jsonl", "freeze/samples.jsonl"):
        row = json.loads((out / "results" / exported).read_text().splitlines()[0])
        assert {"extracted", "extracted_strict", "correct_strict", "extracted_flexible_lm_eval",
                "correct_flexible_lm_eval", "extracted_sfn_strict", "correct_sfn_strict"} <= set(row), exported


def test_results_are_a_folder_sfn_report_rewrites(study):
    from click.testing import CliRunner

    from sfn.cli import main

    _, out, _ = study
    result = CliRunner().invoke(main, ["report", str(out / "results")])
    assert result.exit_code == 0, result.output
    assert "Each linear module kind of B zeroed or re-initialised in layers 1-2" in (out / "results" / "report.md").read_text()


def test_a_rerun_redoes_only_the_missing_job(study, tiny_base):
    cache, out, _ = study
    merge_done = cache / "jobs" / "eval-B___Rs_mlp" / "done.json"
    merge_done.unlink()
    second = run_study(tiny_base, cache, out)
    assert second.returncode == 0, second.stderr[-3000:]
    started = [line.split("start ", 1)[1] for line in second.stdout.splitlines() if " start " in line]
    assert started == ["eval:B + R's mlp"] and merge_done.is_file()


def test_a_missing_base_is_reported_before_any_work(tmp_path):
    result = subprocess.run([sys.executable, str(STUDY / "run_study.py"), "--base", str(tmp_path / "nowhere"),
                             "--cache", str(tmp_path / "cache")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--base" in result.stderr and "nowhere" in result.stderr


def test_no_workers_is_refused_before_the_cache_is_made(tmp_path):
    result = subprocess.run([sys.executable, str(STUDY / "run_study.py"), "--profile", "smoke_task", "--workers", "0",
                             "--cache", str(tmp_path / "cache")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--workers 0" in result.stderr and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("folder", [STUDY, STUDY / "two_step"], ids=["gsm8k", "two_step"])
def test_the_committed_study_reads_as_this_sfn_reports_it(folder, tmp_path):
    """studies/smollm2/results/report.md (and two_step/'s) and the README's verdicts are what today's
    `sfn report` writes from the committed tables: a change of wording reaches the study
    (`run_study.py --report-only`, with `--out` for the second study)."""
    from sfn.report import write_report

    results = tmp_path / "results"
    shutil.copytree(folder / "results", results)
    write_report(results)
    fresh = (results / "report.md").read_text()
    assert fresh == (folder / "results" / "report.md").read_text(), "rerun studies/smollm2/run_study.py --report-only"
    findings = [line for line in fresh.splitlines() if line.startswith("> **Finding.**")]
    readme = (folder / "README.md").read_text()
    assert len(findings) >= 4 and all(line in readme for line in findings)


def test_report_only_rewrites_the_verdicts_without_a_cache(tmp_path):
    out = tmp_path / "study"
    shutil.copytree(STUDY / "results", out / "results")
    readme = (STUDY / "README.md").read_text()
    stale = readme.replace("> **Finding.** Of the modules inside the layers", "> **Finding.** an old sentence; Of the modules inside the layers")
    assert stale != readme
    (out / "README.md").write_text(stale)
    done = subprocess.run([sys.executable, str(STUDY / "run_study.py"), "--report-only", "--out", str(out),
                           "--cache", str(tmp_path / "no-cache")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "README.md").read_text() == readme and not (tmp_path / "no-cache").exists()


def test_the_pilot_measures_b_with_shots_and_a_tuned_r(tiny_base, tmp_path):
    command = [sys.executable, str(STUDY / "pilot.py"), "--base", str(tiny_base), "--problems", "8", "--shots", "2",
               "--max-new-tokens", "8", "--check-tuned", "2", "--tasks", "two_step", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads((tmp_path / "pilot.json").read_text())["tasks"]["two_step (2-shot)"]
    assert (row["problems"], row["shots"], row["prompt_format"], row["stop"]) == (8, 2, "raw", ["\n\nQuestion:"])
    tuned = row["tuned"]["2 steps"]
    assert (tuned["steps"], tuned["train_examples"], tuned["problems"]) == (2, 512, 8)
    assert tuned["doubles"] == (tuned["accuracy"] >= 2 * row["accuracy"] and tuned["ci95"][0] > row["ci95"][1])
    samples = (tmp_path / "two_step_(2-shot)" / "samples.jsonl").read_text().splitlines()
    prompt = json.loads(samples[0])["prompt"]
    assert prompt.count("#### ") == 2 and prompt.endswith("Answer:")  # the worked examples, then the question
    assert (tmp_path / "two_step_(2-shot)" / "tuned-2" / "summary.json").is_file()
