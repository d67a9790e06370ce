"""Scoring one output against its reference, the way `evaluate` does: for rescoring one's own outputs."""

from __future__ import annotations

from typing import Any

from sfn.eval.benchmarks import Benchmark, get_benchmark


def score_output(benchmark: Benchmark, output: str, reference: str) -> dict[str, Any]:
    """`extracted` and `correct`, plus `extracted_NAME`/`correct_NAME` per extra metric of the benchmark."""
    extracted = benchmark.extract(output)
    scores: dict[str, Any] = {"extracted": extracted, "correct": benchmark.is_correct(extracted, reference)}
    for name, value in benchmark.extract_extra(output).items():
        scores[f"extracted_{name}"] = value
        scores[f"correct_{name}"] = benchmark.is_correct(value, reference, name)
    return scores


def score_answer(output: str, reference: str, benchmark: str | Benchmark = "gsm8k") -> dict[str, Any]:
    """Extract the answer from `output` and check it against `reference` as sfn eval does.

    Returns `extracted` and `correct` (the benchmark's headline metric) and, where the benchmark
    defines more, one `extracted_NAME`/`correct_NAME` pair each: for GSM8K `strict` (lm-eval's
    strict-match), `flexible_lm_eval` (lm-eval's flexible-extract) and `sfn_strict`. `reference` is
    the bare answer ("18"), as `Sample.reference` holds it.
    """
    return score_output(get_benchmark(benchmark), output, str(reference))
