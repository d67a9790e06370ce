"""Evaluation: benchmarks, generation with budget forcing, answer checking and output levels I-IV."""

from sfn.eval.benchmarks import (
    Benchmark,
    HubSource,
    Sample,
    register_benchmark,
    registered_benchmarks,
)
from sfn.eval.config import EvalConfig
from sfn.eval.grade import Grade, Grader, Thresholds, grade
from sfn.eval.prompts import ThinkingMarkers
from sfn.eval.run import EvalResult, evaluate, rescore
from sfn.eval.score import score_answer

__all__ = [
    "Benchmark",
    "EvalConfig",
    "EvalResult",
    "Grade",
    "Grader",
    "HubSource",
    "Sample",
    "ThinkingMarkers",
    "Thresholds",
    "evaluate",
    "grade",
    "register_benchmark",
    "registered_benchmarks",
    "rescore",
    "score_answer",
]
