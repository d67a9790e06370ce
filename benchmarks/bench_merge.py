"""sfn merge vs mergekit on the paper's atomic merge: the o_proj swap of a Qwen2.5-0.5B-shaped pair.

    python benchmarks/bench_merge.py [--repeat 2]

Uses the bf16 pair shaped like Qwen2.5-0.5B from `sfn.synthetic` (24 layers, hidden 896, MLP 4864,
14/2 heads, vocab 151936, tied embeddings; generated under benchmarks/work/ once), then runs each tool in a child process
under /usr/bin/time -v: `sfn.merge(base, donor, "o", out)` and `mergekit-yaml` with a `linear` merge
whose per-filter weights take o_proj from the donor (1/0) and everything else from the base (0/1).
Checks that both outputs hold bit-identical tensors and prints wall time and peak RSS of each.
mergekit runs from its own venv (benchmarks/work/mergekit-venv) so its pins never touch this one:
    python -m venv --system-site-packages benchmarks/work/mergekit-venv
    benchmarks/work/mergekit-venv/bin/pip install mergekit
"""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
from pathlib import Path

import torch

from measure import WORK, synthetic_pair, timed

MERGEKIT = WORK / "mergekit-venv" / "bin" / "mergekit-yaml"
def mergekit_config(base: Path, donor: Path) -> Path:
    path = WORK / "mergekit-o-swap.yml"
    path.write_text(textwrap.dedent(f"""\
        merge_method: linear
        dtype: bfloat16
        models:
          - model: {base}
            parameters:
              weight:
                - filter: o_proj
                  value: 0
                - value: 1
          - model: {donor}
            parameters:
              weight:
                - filter: o_proj
                  value: 1
                - value: 0
        """))
    return path


def compare(first: Path, second: Path) -> int:
    from sfn.io import open_checkpoint

    with open_checkpoint(first) as a, open_checkpoint(second) as b:
        names = set(a.tensors()) & set(b.tensors())
        extra = set(a.tensors()) ^ set(b.tensors())
        if extra:
            print(f"tensors in only one output: {sorted(extra)}")
        differing = [n for n in sorted(names) if not torch.equal(a.read(n), b.read(n))]
        if differing:
            sys.exit(f"outputs differ in {len(differing)} tensors, first {differing[0]}")
    return len(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each tool; the fastest is reported")
    args = parser.parse_args()
    if not MERGEKIT.exists():
        sys.exit(f"mergekit is not installed at {MERGEKIT}; see this script's docstring")
    base, donor = synthetic_pair("qwen2.5-0.5b")
    sfn_out, mergekit_out = WORK / "out-sfn", WORK / "out-mergekit"
    sfn_command = [sys.executable, "-c", f"from sfn.stethoscopes.surgery import merge; merge({str(base)!r}, {str(donor)!r}, 'o', {str(sfn_out)!r}, overwrite=True)"]
    mergekit_command = [str(MERGEKIT), str(mergekit_config(base, donor)), str(mergekit_out), "--quiet"]
    results = {}
    for name, command, out in (("sfn merge", sfn_command, sfn_out), ("mergekit linear", mergekit_command, mergekit_out)):
        runs = []
        for _ in range(args.repeat):
            shutil.rmtree(out, ignore_errors=True)
            runs.append(timed(command))
        results[name] = (min(r[0] for r in runs), max(r[1] for r in runs))
    count = compare(sfn_out, mergekit_out)
    print(f"{count} tensors bit-identical in both outputs")
    print(f"{'tool':<16} {'wall s':>8} {'peak RSS MiB':>13}")
    for name, (wall, rss) in results.items():
        print(f"{name:<16} {wall:8.2f} {rss:13.0f}")


if __name__ == "__main__":
    main()
