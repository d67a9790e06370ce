"""Summary statistics of an evaluation: accuracy with a Wilson interval, pass@k and maj@k with
bootstrap intervals over problems, output lengths, cut-offs, and the floor warning."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Z_95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 2000
# maj@k for k < n averages the vote over k-subsets of the n samples: all of them when there are at
# most this many, else this many drawn with a seed fixed per problem.
MAJORITY_SUBSETS = 1000
# Fewer problems solved than this, or an interval reaching zero, and the benchmark cannot rank models.
FLOOR_SOLVED = 5


def wilson_interval(successes: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion; stays inside [0, 1] and is sensible at 0/n and n/n."""
    if total == 0:
        return (0.0, 1.0)
    share = successes / total
    denominator = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / denominator
    half_width = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / denominator
    # At 0/n and n/n the bound is exactly 0 (or 1); the float arithmetic leaves ~1e-18 instead.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == total else min(1.0, centre + half_width)
    return (low, high)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # The ratio of binomials as a product, so large n neither overflows nor loses precision.
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def k_values(n: int) -> list[int]:
    """1 and the powers of two up to n: the k that pass@k and maj@k are reported for."""
    return [k for k in (2**power for power in range(n.bit_length())) if k <= n]


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool], same: Callable[[str, str], bool]) -> float:
    """Whether the majority vote over `answers` is correct, with `same` deciding which answers agree.

    Answers that nothing was extracted from do not vote (all of them empty: wrong). A tie between
    classes counts as the share of tied classes that are correct (a fair coin among them).
    """
    classes: list[list[int]] = []  # indices of the samples per class of equivalent answers
    for index, answer in enumerate(answers):
        if not isinstance(answer, str):  # None, or the NaN pandas puts in a column with no answer
            continue
        for members in classes:
            if same(answers[members[0]], answer):
                members.append(index)
                break
        else:
            classes.append([index])
    if not classes:
        return 0.0
    top = max(len(members) for members in classes)
    tied = [members for members in classes if len(members) == top]
    return sum(bool(correct[members[0]]) for members in tied) / len(tied)


def majority_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int,
                  same: Callable[[str, str], bool], seed: int = 0) -> float:
    """maj@k of one problem: the majority vote's correctness averaged over k-subsets of its samples."""
    n = len(answers)
    if k == n:
        return majority_correct(answers, correct, same)
    if math.comb(n, k) <= MAJORITY_SUBSETS:
        subsets: Any = itertools.combinations(range(n), k)
    else:
        rng = random.Random(seed)
        subsets = (rng.sample(range(n), k) for _ in range(MAJORITY_SUBSETS))
    values = [majority_correct([answers[i] for i in subset], [correct[i] for i in subset], same) for subset in subsets]
    return sum(values) / len(values)


def bootstrap_interval(values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of per-problem `values`, resampling problems."""
    array = np.asarray(values, dtype=float)
    if len(array) == 0:
        return (0.0, 1.0)
    means = array[np.random.default_rng(seed).integers(0, len(array), (resamples, len(array)))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return (float(low), float(high))


def problem_pass_rates(samples: Any, metric: str = "correct") -> Any:
    """Per problem (`id`), the share of its samples that are correct: a pandas Series in first-seen order."""
    return samples.groupby("id", sort=False)[metric].mean().astype(float)


def sampling_metrics(samples: Any, same: Callable[[str, str], bool] | None) -> dict[str, Any]:
    """pass@k and (with `same`) maj@k for k in {1, 2, 4, ... <= n}, each with a bootstrap interval over problems."""
    groups = list(samples.groupby("id", sort=False))
    n = min(len(group) for _, group in groups)
    metrics: dict[str, Any] = {"pass_at_k": {}, "maj_at_k": {}}
    for k in k_values(n):
        per_problem = [pass_at_k(len(group), int(group["correct"].sum()), k) for _, group in groups]
        metrics["pass_at_k"][str(k)] = _with_interval(per_problem)
        if same is not None:
            per_problem = [
                majority_at_k(list(group["extracted"]), list(group["correct"]), k, same, seed=position)
                for position, (_, group) in enumerate(groups)
            ]
            metrics["maj_at_k"][str(k)] = _with_interval(per_problem)
    if same is None:
        del metrics["maj_at_k"]
    return metrics


def _with_interval(per_problem: list[float]) -> dict[str, Any]:
    return {"value": float(np.mean(per_problem)), "ci95": list(bootstrap_interval(per_problem))}


def floor_warning(solved: int, problems: int, low: float) -> str | None:
    """A sentence when the benchmark is too hard to rank models: interval down to 0, or < 5 problems solved."""
    if solved >= FLOOR_SOLVED and low > 0:
        return None
    return (f"floor: {solved} of {problems} problems solved (95% interval down to {low:.1%}); this benchmark "
            "cannot rank these models: use an easier benchmark, more problems or samples, or a stronger model")


def summarize(samples: Any, extra_metrics: list[str], same: Callable[[str, str], bool] | None = None) -> dict[str, Any]:
    """Accuracy (with 95% CI) per metric, pass@k/maj@k, token statistics and level counts of a samples DataFrame.

    With one sample per problem the interval is Wilson's; with several, a bootstrap over problems
    (samples of one problem are not independent). `same` compares extracted answers for maj@k.
    """
    total = len(samples)
    problems = int(samples["id"].nunique()) if total else 0
    per_problem = total // problems if problems and total % problems == 0 else None
    summary: dict[str, Any] = {"samples": total, "problems": problems, "samples_per_problem": per_problem}
    for metric in ["correct", *(f"correct_{name}" for name in extra_metrics)]:
        hits = int(samples[metric].sum()) if total else 0
        name = "accuracy" if metric == "correct" else f"accuracy_{metric.removeprefix('correct_')}"
        if total and problems < total:
            low, high = bootstrap_interval(list(problem_pass_rates(samples, metric)))
        else:
            low, high = wilson_interval(hits, total)
        summary[name] = hits / total if total else None
        summary[name + "_ci95"] = [low, high]
    if total:
        summary.update(sampling_metrics(samples, same))
    solved = int(samples.groupby("id", sort=False)["correct"].any().sum()) if total else 0
    summary["problems_solved"] = solved
    summary["floor_warning"] = floor_warning(solved, problems, summary["accuracy_ci95"][0]) if total else None
    summary["mean_output_tokens"] = float(samples["tokens"].mean()) if total else None
    summary["median_output_tokens"] = float(samples["tokens"].median()) if total else None
    summary["truncated_share"] = float(samples["truncated"].mean()) if total else None
    summary["levels"] = {level: int((samples["level"] == level).sum()) for level in ("I", "II", "III", "IV")} if total else {}
    return summary


def paired_difference(correct: Any, baseline: Any, z: float = Z_95) -> dict[str, float]:
    """Accuracy of `correct` minus `baseline`, scored on the same problems.

    Each is a sequence over the same problems of booleans (one sample each) or pass rates in
    [0, 1] (several samples each: `problem_pass_rates`). Pairing removes the problems both do
    equally well on from the uncertainty: the interval is the paired Wald interval on the mean
    difference and `p_value` the exact two-sided sign test on the problems where they differ
    (for booleans, McNemar's exact test). Two independent 95% intervals that overlap can still
    hide a difference this finds.
    """
    differences = [float(new) - float(old) for new, old in zip(correct, baseline, strict=True)]
    total = len(differences)
    only_new = sum(1 for difference in differences if difference > 0)
    only_old = sum(1 for difference in differences if difference < 0)
    difference = sum(differences) / total if total else 0.0
    squares = sum(value * value for value in differences)
    variance = (squares - total * difference * difference) / (total * total) if total else 0.0
    half_width = z * math.sqrt(max(variance, 0.0))
    discordant = only_new + only_old
    tail = sum(math.comb(discordant, k) for k in range(min(only_new, only_old) + 1)) / 2**discordant if discordant else 1.0
    return {"difference": difference, "low": difference - half_width, "high": difference + half_width,
            "only_new": only_new, "only_baseline": only_old, "p_value": min(1.0, 2 * tail)}
