"""The paper's four stethoscopes on SmolLM2-135M-Instruct, end to end, in one command:

    python studies/smollm2/run_study.py

Fine-tunes B on GSM8K with four Freeze presets (the `all` run is R), measures Delta between B and R,
evaluates B, the three Merges, R and the Freeze runs on the first 200 GSM8K test problems, destroys
modules of B on conversation prompts, then writes `results/` (tables, figures, `sfn report`'s page)
and this folder's README.md. Checkpoints and outputs live in the cache folder (outside git); a rerun
skips finished jobs and resumes unfinished ones, so Ctrl-C or a crash loses at most a few minutes.
Two jobs run at once, one core each.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from study_jobs import is_done, run_job
from study_settings import PROFILES, StudySettings, run_label, train_name

CACHE_ROOT = Path.home() / ".cache" / "sfn" / "studies"
RUNS_FILE = "runs.jsonl"


def job_graph(settings: StudySettings) -> dict[str, list[str]]:
    """Job -> the jobs it needs, in priority order: R and what waits on it (the map) first, then the other
    training runs, so that the last jobs to run are the shorter evaluations."""
    graph: dict[str, list[str]] = {"base": [], "data": [], "train:all": ["base", "data"]}
    if settings.map_window:  # the destruction check and the map's best cells wait for it
        graph["map"] = ["train:all", "data"]
    runs = [(preset, seed) for preset, seed in settings.runs() if (preset, seed) != ("all", 0)]
    graph.update({f"train:{train_name(preset, seed)}": ["base", "data"] for preset, seed in runs})
    graph["eval:B"] = ["base", "data"]
    graph["destroy"] = ["base", "map"] if settings.map_window else ["base"]
    for label, (start, taken, _) in settings.variants().items():
        if label.startswith("map #"):
            graph[f"eval:{label}"] = ["train:all", "map"]
        elif label != "B" and (start == "all" or taken):
            graph[f"eval:{label}"] = ["train:all", "data"]
    graph["delta"] = ["train:all"]
    graph.update({f"eval:{run_label(preset, seed)}": [f"train:{train_name(preset, seed)}", "data"] for preset, seed in runs})
    return graph


def run_jobs(cache: Path, settings: StudySettings, log=print) -> tuple[int, list[str]]:
    """Run every unfinished job, `settings.workers` at a time as their inputs become ready.
    Returns how many jobs were started and which failed."""
    graph = job_graph(settings)
    done = {name for name in graph if is_done(cache, name)}
    failed: set[str] = set()
    started_jobs = 0
    running: dict[Future, tuple[str, float]] = {}
    begun = time.perf_counter()
    if done:
        log(f"already done: {', '.join(sorted(done))}")
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no torch thread pools inherited
    with ProcessPoolExecutor(max_workers=settings.workers, mp_context=context) as pool:
        while True:
            blocked = {name for name, needs in graph.items() if any(n in failed for n in needs)} - failed
            failed |= blocked
            busy = {name for name, _ in running.values()}
            ready = [name for name, needs in graph.items()
                     if name not in done | failed | busy and all(n in done for n in needs)]
            for name in ready[: settings.workers - len(running)]:
                log(f"[{_clock(begun)}] start {name}")
                running[pool.submit(run_job, name, cache, settings)] = (name, time.perf_counter())
                started_jobs += 1
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name, started = running.pop(future)
                try:
                    future.result()
                    done.add(name)
                    log(f"[{_clock(begun)}] done  {name} in {time.perf_counter() - started:.0f} s")
                except Exception as error:  # noqa: BLE001 - one failed job must not stop the independent ones
                    failed.add(name)
                    log(f"[{_clock(begun)}] FAILED {name}: {type(error).__name__}: {error}")
    return started_jobs, sorted(failed)


def _clock(begun: float) -> str:
    seconds = int(time.perf_counter() - begun)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=None, help="checkpoints and outputs (default: $SFN_STUDY_CACHE, "
                        f"or {CACHE_ROOT}/NAME, NAME the profile's: smollm2, smollm2-two_step)")
    parser.add_argument("--out", type=Path, default=None, help="where results/ and README.md go (default: this folder "
                        "for the first study, its subfolder two_step/ for the second)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full", help="full: the GSM8K study; two_step: "
                        "the second study, on a generated task; smoke, smoke_task: one-minute runs for testing")
    parser.add_argument("--base", default=None, help="another base model (directory or .gguf) instead of SmolLM2")
    parser.add_argument("--workers", type=int, default=None, help="jobs at once (default 2, one core each)")
    parser.add_argument("--report-only", action="store_true",
                        help="only re-render results/report.* and README.md's verdicts from results/ (no cache needed)")
    args = parser.parse_args(argv)
    from dataclasses import replace

    settings = PROFILES[args.profile]
    settings = replace(settings, **{k: v for k, v in (("base", args.base), ("workers", args.workers)) if v is not None})
    out = args.out or settings.output_folder()
    cache = args.cache or Path(os.environ.get("SFN_STUDY_CACHE", CACHE_ROOT / settings.name))
    if args.report_only:
        from study_results import refresh_report

        print(f"wrote {', '.join(str(path) for path in refresh_report(out))}")
        return 0
    problems = [] if settings.task else [f"{path} is missing (GSM8K from ../shared/data)" for path in
                                         (settings.gsm8k_train, settings.gsm8k_test) if not Path(path).is_file()]
    if settings.base and not Path(settings.base).exists():
        problems.append(f"--base {settings.base} does not exist")
    if settings.workers < 1:
        problems.append(f"--workers {settings.workers}: at least one job must run at a time (default 2)")
    if problems:
        print("cannot run the study:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    cache.mkdir(parents=True, exist_ok=True)
    started, wall = time.time(), time.perf_counter()
    print(f"study cache: {cache}")
    ran, failed = run_jobs(cache, settings)
    if ran:  # the study's wall-clock time is the sum over the invocations that did work
        with open(cache / RUNS_FILE, "a") as runs:
            record = {"started": started, "seconds": round(time.perf_counter() - wall, 1), "jobs": ran, "failed": failed}
            runs.write(json.dumps(record) + "\n")
    if failed:
        print(f"failed: {', '.join(failed)}; rerun the same command to retry them (finished jobs are kept)", file=sys.stderr)
        return 1
    from study_results import write_results

    paths = write_results(cache, out, settings)
    print(f"wrote {', '.join(str(path) for path in paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
