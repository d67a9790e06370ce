"""Delta's fused kernel alone, warm, in one process: element pairs per second per core.

Against the floor for touching every byte: a numba pass that only decodes and sums both tensors
(`floor`). The data: a bf16 pair of N elements (default 2^25) changed the way a fine-tune changes
bf16 weights, base x (1 + 0.002 z) rounded to bf16 (71% of the pairs keep their bits, so r is 0 for
most; the histogram's scatter then hits one bin over and over). Each variant is timed best of
`--repeat`, at 1 thread and at numba's default thread count; `--baseline DIR` also times
`DIR/sfn/stethoscopes/delta/kernel.py` (an older sfn, e.g. from `benchmarks/baseline.py`) on the
same arrays. CPU seconds per call come from the process's CPU time, so a loaded machine shows as
wall > CPU / threads.

`--stages` is the profile: the kernel compiled again (uncached) with one stage of its chunk loop
left out at a time, one thread; what a stage costs is the time it takes away when removed.

    python benchmarks/bench_kernel.py [--elements N] [--repeat 5] [--baseline DIR] [--stages]
"""

from __future__ import annotations

import argparse
import time
import types
from pathlib import Path

import numba
import numpy as np
import torch
from numba import njit, prange

from baseline import load_average
from sfn.io.dtypes import tensor_bits
from sfn.stethoscopes.delta import kernel
from sfn.stethoscopes.delta.stats import FINE_BINS


@njit(parallel=True, nogil=True, fastmath=True, error_model="numpy")
def floor_sum(base, tuned, out):  # pragma: no cover - compiled
    """Decode both bf16 arrays and sum them: what touching every byte costs, with nothing else."""
    n = base.size
    threads = out.shape[0]
    per_thread = (n + threads - 1) // threads
    for t in prange(threads):
        total = np.float32(0)
        buffer = np.empty(256, np.uint32)
        values = buffer.view(np.float32)
        stop = min(n, (t + 1) * per_thread)
        for start in range(t * per_thread, stop, 256):
            count = min(256, stop - start)
            # sliced, as the kernel's chunks are: indexed at start + j the loop stayed scalar (10x slower)
            for source in (base[start : start + count], tuned[start : start + count]):
                for j in range(count):
                    buffer[j] = np.uint32(source[j]) << np.uint32(16)
                for j in range(count):
                    total += values[j]
        out[t] = total


def load_kernel(folder: str) -> types.ModuleType:
    """The kernel module of an older sfn, compiled here without writing to that sfn's numba cache
    (a cache entry made under another module name breaks that sfn's own later runs)."""
    path = Path(folder) / "sfn/stethoscopes/delta/kernel.py"
    module = types.ModuleType("old_kernel")
    exec(compile(path.read_text().replace("cache=True", "cache=False"), str(path), "exec"), module.__dict__)
    return module


STAGES = {  # a line of `_accumulate`'s chunk loop, and what leaving it out removes
    "histogram scatter": "            _scatter(bin_of, count, copies, width)\n",
    "max |d| (integer max)": "            largest[0] = max(largest[0], _largest(diff[:count].view(np.uint32)))\n",
    "float loop (sums, r, moments, bins)": "            _floats(b, v, diff[:count], bin_of, eps32, tol32, lo32, hi32, scale, top, sums[t])\n",
}


def kernel_without(lines: list[str]) -> types.ModuleType:
    """This sfn's kernel with `lines` of its source removed, compiled uncached."""
    path = Path(kernel.__file__)
    source = path.read_text().replace("cache=True", "cache=False")
    for line in lines:
        if line not in source:
            raise SystemExit(f"--stages: the kernel no longer has the line {line.strip()!r}; update STAGES")
        source = source.replace(line, "")
    module = types.ModuleType("kernel_stage")
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def block_pair(module: types.ModuleType, base: torch.Tensor, tuned: torch.Tensor) -> tuple:
    """The bf16 pair as `module.accumulate` takes it: kernel arrays of the stored bits (this sfn), or
    the tensors themselves (kernels before the torch-free reader of 2026-12-06)."""
    if hasattr(module, "pair_arrays"):
        return module.pair_arrays(tensor_bits(base), "bfloat16", tensor_bits(tuned), "bfloat16")
    return base, tuned


def stage_profile(base: torch.Tensor, tuned: torch.Tensor, bins: int, repeat: int) -> None:
    numba.set_num_threads(1)
    variants = {"all stages": []}
    variants.update({f"without {name}": [line] for name, line in STAGES.items()})
    variants["decode + bit counts only"] = list(STAGES.values())
    print(f"\n{'profile (1 thread)':44} {'CPU ms':>7} {'ns/pair':>8} {'share of all':>12}")
    total = None
    for name, lines in variants.items():
        module = kernel_without(lines)
        sums, hist = module.new_buffers(bins)
        pair = block_pair(module, base, tuned)
        _, cpu = best_of(lambda: module.accumulate(*pair, 1e-8, (-1.0, 1.0), sums, hist), repeat)
        total = total or cpu
        print(f"{name:44} {cpu * 1e3:7.1f} {cpu / base.numel() * 1e9:8.2f} {cpu / total:11.0%}")


def best_of(function, repeat: int) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that call) after one warm-up call."""
    function()
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--elements", type=int, default=1 << 25)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", help="a folder holding an older sfn/ whose kernel to time too")
    parser.add_argument("--stages", action="store_true", help="also profile the chunk loop's stages (1 thread)")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    weights = 0.02 * torch.randn(args.elements, generator=generator)
    base = weights.to(torch.bfloat16)
    tuned = (weights * (1 + 0.002 * torch.randn(args.elements, generator=generator))).to(torch.bfloat16)
    base_bits, tuned_bits = block_pair(kernel, base, tuned)
    bins = 2001 * -(-FINE_BINS // 2001)  # the fine histogram `ChangeAccumulator` asks for
    kernels = {"kernel": kernel}
    if args.baseline:
        kernels["old kernel"] = load_kernel(args.baseline)
    print(f"{args.elements} bf16 pairs, {(base != tuned).float().mean().item():.1%} changed; threading layer "
          f"{numba.config.THREADING_LAYER}; load average {load_average()}\n")
    print(f"{'run':12} {'threads':>7} {'wall ms':>8} {'CPU ms':>7} {'M pairs/s':>10} {'M pairs/s/core':>15} {'vs floor':>9}")
    for threads in sorted({1, numba.config.NUMBA_DEFAULT_NUM_THREADS}):
        numba.set_num_threads(threads)
        out = np.zeros(threads, np.float32)
        runs = {"floor": lambda: floor_sum(base_bits, tuned_bits, out)}
        for name, module in kernels.items():
            sums, hist = module.new_buffers(bins)
            pair = block_pair(module, base, tuned)
            runs[name] = lambda module=module, sums=sums, hist=hist, pair=pair: module.accumulate(*pair, 1e-8, (-1.0, 1.0), sums, hist)
        floor = None
        for name, run in runs.items():
            wall, cpu = best_of(run, args.repeat)
            floor = floor or wall
            rate = args.elements / wall / 1e6
            print(f"{name:12} {threads:7} {wall * 1e3:8.1f} {cpu * 1e3:7.1f} {rate:10.1f} {rate / threads:15.1f} "
                  f"{wall / floor:8.2f}x")
    if args.stages:
        stage_profile(base, tuned, bins, args.repeat)
    print(f"\nload average {load_average()}")


if __name__ == "__main__":
    main()
