"""Delta stethoscope: time and peak memory against reading the bytes and against the paper's way.

For each generated pair (random bf16 weights shaped like Qwen2.5-0.5B / -1.5B, made once under
benchmarks/work/), three runs, each from a cold page cache (caches dropped; needs root):
  read   - read every byte of both checkpoints (the I/O floor)
  sfn    - `sfn delta BASE TUNED --no-plots` (norms, relative-change histograms, moments)
  paper  - AutoModelForCausalLM.from_pretrained both models, then per parameter the same statistics
           with torch on the whole state dicts (norms, relative change, histogram)
Wall time and peak RSS come from /usr/bin/time -v around each subprocess. Peak memory above the
Python/torch/numba import baseline is compared with the largest single tensor in float32.
Optional runs, measured in the same invocation so that their ratios share the machine's load:
  old      - `--baseline DIR`: the same `sfn delta` with DIR (a checkout of older sfn) first on PYTHONPATH
  spectral - `--spectral`: `sfn delta --spectral --no-plots` (randomized SVD of every 2-D update)
  old spectral - with both `--baseline` and `--spectral`: the same with the older sfn
  plots    - `--plots`: `sfn delta` with its figures (the figures' cost is plots - sfn)
  floor only - `--floor`: a pass through both checkpoints with sfn's reader and read-ahead thread
             that only decodes and sums every tensor pair (numba, all cores), timed inside its process
             like `delta() only`: the floor for touching every byte once
Also `delta() only`: `sfn.delta(BASE, TUNED)` timed inside a process that imported sfn and
numba and loaded the kernel's numba cache before the caches were dropped (start-up excluded).
`--warm` keeps the page cache (the pair read once first), so the runs measure the computation.

    python benchmarks/bench_delta.py [--shapes qwen2.5-0.5b qwen2.5-1.5b] [--baseline DIR] [--spectral]
                                     [--plots] [--floor] [--warm] [--skip-paper]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile

from baseline import load_average
from measure import CHECKOUT, HERE, drop_caches, page_reporting, synthetic_pair, timed, timed_cpu

PAPER_WAY = r'''
import sys, torch
from transformers import AutoModelForCausalLM
base = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16)
tuned = AutoModelForCausalLM.from_pretrained(sys.argv[2], dtype=torch.bfloat16)
tuned_params = dict(tuned.named_parameters())
for name, b in base.named_parameters():
    b, t = b.detach().float(), tuned_params[name].detach().float()
    d = t - b
    abs_norm, rel = d.norm(), d.norm() / b.norm()
    r = d / (b.abs() + 1e-8)
    hist = torch.histc(r, bins=2001, min=-1, max=1)
    inside = r[(r >= -1) & (r <= 1)]
    stats = (inside.mean(), inside.std())
'''
READ_ALL = r'''
import sys, pathlib
buffer = memoryview(bytearray(64 << 20))  # reused: a fresh 64 MiB per read costs more than the disk
for folder in sys.argv[1:]:
    for f in sorted(pathlib.Path(folder).glob("*.safetensors")):
        with open(f, "rb", buffering=0) as h:
            while h.readinto(buffer):
                pass
'''
IN_PROCESS = r'''
import sys, time, resource
import numpy as np
from sfn.stethoscopes.delta import delta, kernel
sums, hist = kernel.new_buffers(10)
one = kernel.as_kernel_array(np.ones((2, 2), np.uint16), "bfloat16")  # the pair's dtype: load that signature from the numba cache
kernel.accumulate(one, one, 1e-8, (-1.0, 1.0), sums, hist)
kernel.line_sums(one, one, True)
sys.path.insert(0, sys.argv[1])
from measure import drop_caches
cold = drop_caches(float(sys.argv[5])) if sys.argv[4] == "cold" else False
before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
delta(sys.argv[2], sys.argv[3], progress=False)
wall, after = time.perf_counter() - wall, resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(f"IN_PROCESS {wall:.3f} {cpu:.3f} {cold}")
'''
FLOOR = r'''
import sys, time, resource
sys.path.insert(0, sys.argv[1])
from bench_kernel import floor_sum
from measure import drop_caches
import numba, numpy as np
from sfn.io.read_ahead import fault_in, read_ahead
from sfn.io.sources import opened
out = np.zeros(numba.get_num_threads(), np.float32)
mapped = np.zeros(8, np.uint16)
mapped.flags.writeable = False  # as the mapped bits are: compile that signature before the clock starts
floor_sum(mapped, mapped, out)
cold = drop_caches(float(sys.argv[5])) if sys.argv[4] == "cold" else False
before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
with opened(sys.argv[2]) as base, opened(sys.argv[3]) as tuned:  # read as sfn.delta reads them
    def blocks():
        for name in base.tensors():
            flat_base, flat_tuned = base.read_bits(name).reshape(-1), tuned.read_bits(name).reshape(-1)
            for start in range(0, flat_base.size, 1 << 24):
                yield name, flat_base[start : start + (1 << 24)], flat_tuned[start : start + (1 << 24)]
            yield name, None, None
    for name, base_bits, tuned_bits in read_ahead(blocks(), lambda item: item[1] is None or (fault_in(item[1]), fault_in(item[2]))):
        if base_bits is None:
            base.release(name)
            tuned.release(name)
        else:
            floor_sum(base_bits, tuned_bits, out)  # bf16 bits
wall, after = time.perf_counter() - wall, resource.getrusage(resource.RUSAGE_SELF)
print(f"IN_PROCESS {wall:.3f} {after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime:.3f} {cold}")
'''
IMPORT_BASELINE = "import numba, pandas, sfn.stethoscopes.delta, sfn.cli"  # what `sfn delta` imports (not torch)


def largest_tensor_fp32_gib(shape: str) -> float:
    from sfn.synthetic import SHAPES, tensor_shapes

    return max(math.prod(s) for s in tensor_shapes(SHAPES[shape]).values()) * 4 / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["qwen2.5-0.5b", "qwen2.5-1.5b"])
    parser.add_argument("--skip-paper", action="store_true", help="skip the (slow, memory-hungry) paper baseline")
    parser.add_argument("--baseline", help="a checkout of older sfn to time the same command with (run 'old')")
    parser.add_argument("--spectral", action="store_true", help="also time `sfn delta --spectral`")
    parser.add_argument("--plots", action="store_true", help="also time `sfn delta` with its figures")
    parser.add_argument("--floor", action="store_true", help="also time a pass that only sums both checkpoints")
    parser.add_argument("--warm", action="store_true", help="keep the page cache between runs (read the pair once first)")
    parser.add_argument("--resident", type=float, default=10.0, metavar="GIB",
                        help="after each cache drop, touch this much memory so that every run starts with resident "
                             "memory (see measure.drop_caches; 0 to measure the VM as it comes)")
    args = parser.parse_args()
    python = sys.executable

    def cold_start() -> bool:
        return False if args.warm else drop_caches(args.resident)

    _, baseline_rss = timed([python, "-c", IMPORT_BASELINE])
    baseline_rss /= 1024
    cold = cold_start()
    resident = f" (then {args.resident:g} GiB made resident)" if cold and args.resident > 0 else ""
    print(f"page cache dropped before each run: {cold}{resident}; "
          f"import baseline RSS {baseline_rss:.2f} GiB; "
          f"load average {load_average()}; {page_reporting()}\n")
    header = (f"{'pair':14} {'run':12} {'wall s':>8} {'CPU s':>7} {'peak GiB':>9} {'above base':>10} {'vs read':>8} "
              f"{'paper/sfn':>9} {'CPU/sfn':>10}")
    print(header)
    print("-" * len(header))
    new = ["env", f"PYTHONPATH={CHECKOUT}"]  # this checkout's sfn, not the installed one
    with tempfile.TemporaryDirectory() as out:  # compile (or load) each version's numba cache, untimed
        tiny = [str(p) for p in synthetic_pair("tiny")]
        timed([*new, python, "-m", "sfn.cli", "delta", *tiny, "--out", f"{out}/new", "--no-plots"])
        if args.baseline:
            timed(["env", f"PYTHONPATH={args.baseline}", python, "-m", "sfn.cli", "delta", *tiny, "--out", f"{out}/old", "--no-plots"])
    for shape in args.shapes:
        base, tuned = synthetic_pair(shape)
        runs: dict[str, tuple[float, float, float]] = {}

        def run(name: str, command: list[str]) -> None:
            """Time one run and print its row at once (CPU ratios: robust to a loaded machine)."""
            cold_start()
            runs[name] = timed_cpu(command)
            wall, rss_mib, cpu = runs[name]
            rss = rss_mib / 1024
            vs_read = f"{wall / runs['read'][0]:.2f}x" if name != "read" else ""
            speedup = f"{runs['paper'][0] / runs['sfn'][0]:.1f}x" if name == "paper" and "sfn" in runs else ""
            vs_sfn = f"{cpu / runs['sfn'][2]:.2f}x" if name != "read" and "sfn" in runs else ""
            print(f"{shape:14} {name:12} {wall:8.2f} {cpu:7.2f} {rss:9.2f} {rss - baseline_rss:10.2f} {vs_read:>8} "
                  f"{speedup:>9} {vs_sfn:>10}")

        def in_process(name: str, script: str) -> None:
            """A pass timed inside its child (start-up excluded); CPU ratios against the floor's pass."""
            child = subprocess.run([*new, python, "-c", script, str(HERE), str(base), str(tuned), "warm" if args.warm else "cold", str(args.resident)],
                                   capture_output=True, text=True, check=True, cwd=HERE)
            wall, cpu = (float(x) for x in child.stdout.split("IN_PROCESS")[-1].split()[:2])
            runs[name] = (wall, 0.0, cpu)
            vs_floor = f"{wall / runs['floor only'][0]:.2f}x floor" if "floor only" in runs and name != "floor only" else ""
            print(f"{shape:14} {name:12} {wall:8.2f} {cpu:7.2f} {'':>9} {'':>10} {wall / runs['read'][0]:7.2f}x "
                  f"{'':>9} {'':>10} {vs_floor}")

        if args.warm:
            timed([python, "-c", READ_ALL, str(base), str(tuned)])
        run("read", [python, "-c", READ_ALL, str(base), str(tuned)])
        if args.floor:
            in_process("floor only", FLOOR)
        command = [python, "-m", "sfn.cli", "delta", str(base), str(tuned), "--out"]
        old = ["env", f"PYTHONPATH={args.baseline}"]
        command_new = [*new, *command]
        with tempfile.TemporaryDirectory() as out:
            run("sfn", [*command_new, f"{out}/sfn", "--no-plots"])
            # the computations alone, in processes that have imported everything already
            in_process("delta() only", IN_PROCESS)
            if args.baseline:
                run("old", [*old, *command, f"{out}/old", "--no-plots"])
            if args.plots:
                run("plots", [*command_new, f"{out}/plots"])
            if args.spectral:
                run("spectral", [*command_new, f"{out}/spectral", "--no-plots", "--spectral"])
                if args.baseline:
                    run("old spectral", [*old, *command, f"{out}/old-spectral", "--no-plots", "--spectral"])
        if not args.skip_paper:
            run("paper", [python, "-c", PAPER_WAY, str(base), str(tuned)])
        limit = 3 * largest_tensor_fp32_gib(shape)
        print(f"{shape:14} target: sfn above baseline <= 3 x largest tensor in fp32 = {limit:.2f} GiB; "
              f"load average {load_average()}\n")


if __name__ == "__main__":
    main()
