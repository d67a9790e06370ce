"""Evaluation: benchmarks, generation with budget forcing, answer checking and output levels I-IV."""

from sfn.lazy import lazy_exports

# Loaded on first use: the package's light modules (the CLI's option lists) must not import torch.
lazy_exports(
    __name__,
    {
        "Benchmark": "sfn.eval.benchmarks",
        "HubSource": "sfn.eval.benchmarks",
        "Sample": "sfn.eval.benchmarks",
        "register_benchmark": "sfn.eval.benchmarks",
        "registered_benchmarks": "sfn.eval.benchmarks",
        "EvalConfig": "sfn.eval.config",
        "Grade": "sfn.eval.grade",
        "Grader": "sfn.eval.grade",
        "Thresholds": "sfn.eval.grade",
        "grade": "sfn.eval.grade",
        "ThinkingMarkers": "sfn.eval.prompts",
        "EvalResult": "sfn.eval.run",
        "evaluate": "sfn.eval.run",
        "rescore": "sfn.eval.run",
        "score_answer": "sfn.eval.score",
    },
)
