"""`organism-math`: the organism's held-out multi-step word problems, as an `sfn.eval` benchmark.

The rows ship beside the organism's weights (written by `sfn organism build`). A correct output
ends with 'The final answer is N.'; the number after that phrase must equal the reference.
"""

from __future__ import annotations

from pathlib import Path

from sfn.organism.world import INSTRUCTION

BENCHMARK_NAME = "organism-math"
BENCHMARK_FILE = "organism-math.jsonl"
SHIPPED_DIR = Path(__file__).parent / "weights"


def organism_math(data: str | Path | None = None):
    """The benchmark reading `data` (default: the rows shipped with the organism)."""
    # Imported here so sfn.eval.benchmarks can register this benchmark among its built-ins
    # without a circular import.
    from sfn.eval.benchmarks import Benchmark

    return Benchmark(
        BENCHMARK_NAME,
        {"question": "question", "answer": "answer"},
        extractor="final_answer",
        comparer="number",
        instruction=INSTRUCTION,
        data=str(data or SHIPPED_DIR / BENCHMARK_FILE),
    )


def ensure_registered() -> None:
    """Register organism-math with `sfn.eval` unless it already is (by sfn.eval or an earlier call)."""
    from sfn.eval.benchmarks import register_benchmark, registered_benchmarks

    if BENCHMARK_NAME not in registered_benchmarks():
        register_benchmark(organism_math())
