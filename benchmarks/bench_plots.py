"""Delta figures (norms.png, histograms.png, heatmap.png): drawing and saving time, this tree against a baseline.

The delta table of a generated pair (default: shaped like Qwen2.5-0.5B, 24 layers, as `sfn make-pair
--shape qwen2.5-0.5b` writes it) is computed once with this tree and pickled; then each version draws
and saves the three figures in a fresh process, `--repeat` times (median). The baseline is the sfn
package at `--baseline` (the commit before the figures were made cheap), extracted with `git archive`.
"import" is loading the plotting modules (matplotlib included); "figures" is drawing and writing the
PNGs (wall time, and the CPU time of the process, which a busy machine inflates less).

    python benchmarks/bench_plots.py [--pair DIR_WITH_base_AND_tuned] [--shape qwen2.5-0.5b] [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from baseline import ROOT, load_average, package_at
from measure import synthetic_pair

DRAW_BASELINE = r"""
import json, pickle, sys, tempfile, time
from pathlib import Path
table = pickle.load(open(sys.argv[1], "rb"))
out = Path(tempfile.mkdtemp())
started = time.perf_counter()
from sfn.stethoscopes.delta import plots
imported = time.perf_counter()
cpu = time.process_time()
times = {}
for name, draw in (("norms", lambda: plots.plot_norms(table, out / "norms.png")),
                   ("histograms", lambda: plots.plot_histograms(table, out / "histograms.png", every=5)),
                   ("heatmap", lambda: plots.plot_heatmap(table, out / "heatmap.png"))):
    begin = time.perf_counter(); draw(); times[name] = time.perf_counter() - begin
print(json.dumps({"import": imported - started, **times, "figures CPU": time.process_time() - cpu}))
"""
DRAW_NOW = r"""
import json, pickle, sys, tempfile, time
from pathlib import Path
table = pickle.load(open(sys.argv[1], "rb"))
out = Path(tempfile.mkdtemp())
started = time.perf_counter()
from sfn.plotting import save_figure
from sfn.stethoscopes.delta import plots
imported = time.perf_counter()
cpu = time.process_time()
times = {}
for name, draw in (("norms", lambda: plots.plot_norms(table)), ("histograms", lambda: plots.plot_histograms(table, every=5)),
                   ("heatmap", lambda: plots.plot_heatmap(table))):
    begin = time.perf_counter(); save_figure(draw(), out / f"{name}.png"); times[name] = time.perf_counter() - begin
print(json.dumps({"import": imported - started, **times, "figures CPU": time.process_time() - cpu}))
"""
COLUMNS = ["import", "norms", "histograms", "heatmap"]  # wall seconds


def run(tree: Path, script: str, table: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", script, str(table)], env=env, cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", type=Path, help="folder with base/ and tuned/ (default: generated under benchmarks/work)")
    parser.add_argument("--shape", default="qwen2.5-0.5b")
    parser.add_argument("--baseline", default="9c6c392", help="git revision of the baseline (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base, tuned = (args.pair / "base", args.pair / "tuned") if args.pair else synthetic_pair(args.shape)

    sys.path.insert(0, str(ROOT))
    from sfn.stethoscopes.delta import delta

    scratch = Path(tempfile.mkdtemp())
    result = delta(str(base), str(tuned))
    # The baseline's plots read a DataFrame carrying the summary in attrs; this tree's take the result.
    frame = result.table.copy()
    frame.attrs.update(result.summary, bin_edges=result.bin_edges.tolist())
    inputs = {"baseline": scratch / "frame.pkl", "this tree": scratch / "result.pkl"}
    inputs["baseline"].write_bytes(pickle.dumps(frame))
    inputs["this tree"].write_bytes(pickle.dumps(result))
    print(f"pair {base.parent}: {len(result.table)} modules, {result.summary['num_layers']} layers, "
          f"{result.summary['bins']} bins")
    print(f"load average before: {load_average()}\n")

    versions = {f"baseline {args.baseline}": (package_at(args.baseline), DRAW_BASELINE, inputs["baseline"]),
                "this tree": (ROOT, DRAW_NOW, inputs["this tree"])}
    print("| version | " + " | ".join(f"{c} s" for c in COLUMNS) + " | figures s | figures CPU s |")
    print("|---|" + "---|" * (len(COLUMNS) + 2))
    totals = []
    for name, (tree, script, table_file) in versions.items():
        runs = [run(tree, script, table_file) for _ in range(args.repeat)]
        medians = {column: statistics.median(r[column] for r in runs) for column in COLUMNS}
        totals.append(statistics.median(sum(r[c] for c in COLUMNS[1:]) for r in runs))
        cpu = statistics.median(r["figures CPU"] for r in runs)
        print(f"| {name} | " + " | ".join(f"{medians[c]:.2f}" for c in COLUMNS) + f" | {totals[-1]:.2f} | {cpu:.2f} |")
    print(f"\nfigures: {totals[0] / totals[1]:.1f}x faster than the baseline")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
