"""Time per tensor of `sfn delta --spectral` on the largest matrices of a 32B model (5120 x 27648,
the MLP projections of Qwen2.5-32B), measured on random float32 matrices of that shape.

`spectral_stats` does, per 2-D weight, two randomized SVDs (of the update and of the base) and one
projection; its cost is linear in the element count at fixed sketch width, so the measured time
extrapolates to a whole model by its 2-D parameter count (printed for a 32B model: 64 layers of
5120 hidden, 27648 intermediate, 40 query / 8 key-value heads of 128, vocab 152064).

    python benchmarks/bench_spectral.py [--rows 5120 --cols 27648 --repeat 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from sfn.stethoscopes.delta.spectral import spectral_stats


def qwen32b_linear_elements() -> int:
    hidden, inter, layers, head_dim, heads, kv = 5120, 27648, 64, 128, 40, 8
    per_layer = 2 * hidden * heads * head_dim + 2 * hidden * kv * head_dim + 3 * hidden * inter
    return layers * per_layer + 2 * 152064 * hidden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5120)
    parser.add_argument("--cols", type=int, default=27648)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    base = torch.randn(args.rows, args.cols, generator=g)
    tuned = base + 1e-3 * torch.randn(args.rows, args.cols, generator=g)
    times, cpu = [], []
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        spectral_stats(base, tuned)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    best, best_cpu = min(times), min(cpu)
    elements = args.rows * args.cols
    total = qwen32b_linear_elements()
    print(f"torch threads {torch.get_num_threads()}")
    # on a shared machine wall time includes waiting for a core; CPU seconds do not
    print(f"{'matrix':>14} {'wall s':>8} {'CPU s':>8} {'CPU ns/element':>15} {'32B model: CPU min':>19}")
    print(f"{args.rows:>6} x {args.cols:<6} {best:8.2f} {best_cpu:8.2f} {1e9 * best_cpu / elements:15.2f} "
          f"{best_cpu * total / elements / 60:19.1f}")
    print(f"32B 2-D weights: {total / 1e9:.1f} G elements = {total / elements:.0f} matrices of this size")


if __name__ == "__main__":
    main()
