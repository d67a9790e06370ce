"""`sfn --help` and subcommand help: wall time of a fresh process, this tree against a baseline revision.

Each invocation is a new interpreter (`python -m sfn.cli ARGS --help`), run `--repeat` times; the
table shows the median wall time and the median CPU time (user + system of the child, which a
busy machine inflates far less than the wall time). The baseline is the sfn package at `--baseline` (default: the commit before
the CLI stopped importing torch for help), extracted with `git archive`. Also prints which heavy
modules (torch, transformers, pandas, numba) each version imports for `sfn --help`.

    python benchmarks/bench_cli.py [--baseline REV] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from baseline import ROOT, load_average, package_at

COMMANDS = ["", "delta", "merge", "plugin apply", "freeze", "eval", "demo", "report", "organism build"]
HEAVY_PROBE = (
    "import sys; sys.argv = ['sfn', '--help']\n"
    "from sfn.cli import main\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    "print(','.join(m for m in ('torch', 'transformers', 'pandas', 'numba') if m in sys.modules) or '-', file=sys.stderr)"
)


def timed(tree: Path, args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh `python -m sfn.cli ARGS --help`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([sys.executable, "-m", "sfn.cli", *args, "--help"], env=env, cwd=tree, check=True,
                   stdout=subprocess.DEVNULL)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heavy(tree: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", HEAVY_PROBE], env=env, cwd=tree, capture_output=True, text=True, check=True)
    return done.stderr.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="9c6c392", help="git revision of the baseline (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    trees = {f"baseline {args.baseline}": package_at(args.baseline), "this tree": ROOT}
    print(f"load average before: {load_average()}")
    print("heavy modules imported by `sfn --help`: " + "; ".join(f"{name}: {heavy(tree)}" for name, tree in trees.items()))
    names = list(trees)
    print(f"\n| command | {names[0]} wall s | {names[1]} wall s | wall speed-up | {names[0]} CPU s | {names[1]} CPU s |")
    print("|---|---|---|---|---|---|")
    for command in COMMANDS:
        runs = [[timed(tree, command.split()) for _ in range(args.repeat)] for tree in trees.values()]
        walls = [statistics.median(w for w, _ in r) for r in runs]
        cpus = [statistics.median(c for _, c in r) for r in runs]
        print(f"| `sfn {command + ' ' if command else ''}--help` | {walls[0]:.2f} | {walls[1]:.2f} | "
              f"{walls[0] / walls[1]:.1f}x | {cpus[0]:.2f} | {cpus[1]:.2f} |")
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
