"""lm-evaluation-harness's results shape, written next to sfn's own summary so tools that read
lm-eval runs (dashboards, comparison scripts) read sfn runs too."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sfn import __version__

LM_EVAL_FILE = "results.json"
# sfn summary metric -> lm-eval "metric,filter" key. GSM8K's two are lm-eval's own filters
# (sfn.eval.answers.lm_eval_strict / lm_eval_flexible with exact string match); any other
# benchmark reports its headline accuracy under the filter name "none".
GSM8K_KEYS = {"accuracy_strict": "exact_match,strict-match", "accuracy_flexible_lm_eval": "exact_match,flexible-extract"}


def lm_eval_results(summary: dict[str, Any], task: str, settings: dict[str, Any]) -> dict[str, Any]:
    """`{"results": {task: {"exact_match,strict-match": ..., ...}}, "config": ..., ...}` from an sfn summary."""
    keys = {name: key for name, key in GSM8K_KEYS.items() if name in summary} or {"accuracy": "exact_match,none"}
    problems = summary.get("problems") or summary["samples"]
    metrics: dict[str, Any] = {"alias": task}
    for name, key in keys.items():
        value = summary[name]
        metric, filter_name = key.split(",")
        metrics[key] = value
        # lm-eval's stderr of a mean of 0/1 scores: the sample standard deviation over sqrt(n); "N/A"
        # where it has none, as lm-eval writes it (its table prints that, and fails on null).
        n = summary["samples"]
        metrics[f"{metric}_stderr,{filter_name}"] = math.sqrt(value * (1 - value) / (n - 1)) if value is not None and n > 1 else "N/A"
    generation = {name: settings.get(name) for name in ("max_new_tokens", "do_sample", "temperature", "top_p", "seed")}
    # lm-eval's `make_table` reads versions, n-shot and higher_is_better beside the results.
    return {
        "results": {task: metrics},
        "versions": {task: f"sfn {__version__}"},
        "n-shot": {task: 0},
        "higher_is_better": {task: {"exact_match": True}},
        "configs": {task: {"task": task, "output_type": "generate_until",
                           "repeats": summary.get("samples_per_problem") or 1,
                           "generation_kwargs": generation, "metadata": {"sfn_settings": settings}}},
        "n-samples": {task: {"original": problems, "effective": problems}},
        "config": {"model": "sfn", "model_args": settings.get("model"), "gen_kwargs": generation,
                   "batch_size": None, "limit": None},
        "sfn_summary": "summary.json",
    }


def write_lm_eval_results(path: Path, summary: dict[str, Any], task: str, settings: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(lm_eval_results(summary, task, settings), indent=2))
