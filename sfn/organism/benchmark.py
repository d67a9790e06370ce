"""`organism-math`: the organism's held-out multi-step word problems, as an `sfn.eval` benchmark.

The rows ship beside the organism's weights (written by `sfn organism build`). A correct output
ends with 'The final answer is N.'; the number after that phrase must equal the reference.
"""

from __future__ import annotations

from pathlib import Path

from sfn.eval.benchmarks import Benchmark
from sfn.organism.world import INSTRUCTION

BENCHMARK_NAME = "organism-math"
BENCHMARK_FILE = "organism-math.jsonl"
SHIPPED_DIR = Path(__file__).parent / "weights"


def organism_math(data: str | Path | None = None):
    """The benchmark reading `data` (default: the rows shipped with the organism); sfn.eval finds it by
    name through `sfn.eval.benchmarks.LAZY_BUILTINS`."""
    return Benchmark(
        BENCHMARK_NAME,
        {"question": "question", "answer": "answer"},
        extractor="final_answer",
        comparer="number",
        instruction=INSTRUCTION,
        data=str(data or SHIPPED_DIR / BENCHMARK_FILE),
    )
