"""Summary statistics of an evaluation: accuracy with a Wilson interval, output lengths, cut-offs."""

from __future__ import annotations

import math
from typing import Any

Z_95 = 1.959963984540054


def wilson_interval(successes: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion; stays inside [0, 1] and is sensible at 0/n and n/n."""
    if total == 0:
        return (0.0, 1.0)
    share = successes / total
    denominator = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / denominator
    half_width = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half_width), min(1.0, centre + half_width))


def summarize(samples: Any, extra_metrics: list[str]) -> dict[str, Any]:
    """Accuracy (with 95% CI) per metric, token statistics and level counts of a samples DataFrame."""
    total = len(samples)
    summary: dict[str, Any] = {"samples": total}
    for metric in ["correct", *(f"correct_{name}" for name in extra_metrics)]:
        hits = int(samples[metric].sum()) if total else 0
        name = "accuracy" if metric == "correct" else f"accuracy_{metric.removeprefix('correct_')}"
        low, high = wilson_interval(hits, total)
        summary[name] = hits / total if total else None
        summary[name + "_ci95"] = [low, high]
    summary["mean_output_tokens"] = float(samples["tokens"].mean()) if total else None
    summary["median_output_tokens"] = float(samples["tokens"].median()) if total else None
    summary["truncated_share"] = float(samples["truncated"].mean()) if total else None
    summary["levels"] = {level: int((samples["level"] == level).sum()) for level in ("I", "II", "III", "IV")} if total else {}
    return summary


def paired_difference(correct: Any, baseline: Any, z: float = Z_95) -> dict[str, float]:
    """Accuracy of `correct` minus `baseline`, scored on the same problems (two boolean sequences).

    Pairing removes the problems both get right or both get wrong from the uncertainty: the interval
    is the paired Wald interval on the difference and `p_value` the exact two-sided McNemar test on
    the problems exactly one of them solves. Two independent 95% intervals that overlap can still
    hide a difference this finds.
    """
    pairs = list(zip(correct, baseline, strict=True))
    total = len(pairs)
    only_new = sum(1 for new, old in pairs if new and not old)
    only_old = sum(1 for new, old in pairs if old and not new)
    difference = (only_new - only_old) / total if total else 0.0
    variance = (only_new + only_old - total * difference * difference) / (total * total) if total else 0.0
    half_width = z * math.sqrt(max(variance, 0.0))
    discordant = only_new + only_old
    tail = sum(math.comb(discordant, k) for k in range(min(only_new, only_old) + 1)) / 2**discordant if discordant else 1.0
    return {"difference": difference, "low": difference - half_width, "high": difference + half_width,
            "only_new": only_new, "only_baseline": only_old, "p_value": min(1.0, 2 * tail)}
