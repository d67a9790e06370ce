"""Per-module change statistics, accumulated block by block with the fused kernel."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sfn.stethoscopes.delta import kernel

# Sarle's bimodality coefficient of a uniform distribution; larger values suggest two modes.
SARLE_THRESHOLD = 5 / 9
# A bimodal r leaves a valley at its mean: at most this share of the values lies within a quarter of a
# standard deviation of the mean (a normal distribution puts 19.7% there, a uniform one 12.5%).
MAX_CENTRE_SHARE = 0.1
# The kernel counts r in at least this many fine bins (the reported histogram sums groups of them), so
# that the centre share is measured finely even when the changes are small against the clip range.
FINE_BINS = 4096


def bimodality_coefficient(n: float, s1: float, s2: float, s3: float, s4: float) -> float:
    """Sarle's b = (skew^2 + 1) / (excess kurtosis + 3 (n-1)^2 / ((n-2)(n-3))) from power sums.

    The sums are of values inside the clip range, so |x| <= 1 and float64 central moments derived
    from raw sums lose no meaningful precision. nan when undefined (fewer than 4 values, or constant).
    """
    if n < 4:
        return math.nan
    mean = s1 / n
    m2 = s2 / n - mean * mean
    if m2 <= 1e-300:
        return math.nan
    m3 = s3 / n - 3 * mean * s2 / n + 2 * mean**3
    m4 = s4 / n - 4 * mean * s3 / n + 6 * mean * mean * s2 / n - 3 * mean**4
    skew = m3 / m2**1.5
    excess_kurtosis = m4 / (m2 * m2) - 3
    return (skew * skew + 1) / (excess_kurtosis + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def centre_share(fine: np.ndarray, clip: tuple[float, float], mean: float, std: float) -> float:
    """Share of the histogrammed values within mean +- std/4, from a fine histogram over `clip`."""
    total = fine.sum()
    if total == 0 or not np.isfinite(mean) or not np.isfinite(std):
        return math.nan
    width = (clip[1] - clip[0]) / len(fine)
    first = int(np.floor((mean - std / 4 - clip[0]) / width))
    last = int(np.floor((mean + std / 4 - clip[0]) / width))
    return float(fine[max(first, 0) : min(last, len(fine) - 1) + 1].sum() / total)


def clamped_bimodality(n: float, s: np.ndarray, below: float, above: float, clip: tuple[float, float]) -> float:
    """Sarle's coefficient of r clamped to `clip`, as the paper's code histograms it: exact, from the
    in-range power sums `s` (s1..s4) plus the clamped values, which all sit on the clip's ends."""
    lo, hi = clip
    return bimodality_coefficient(n, *(s[k - 1] + below * lo**k + above * hi**k for k in range(1, 5)))


@dataclass
class ChangeAccumulator:
    """Everything the Delta stethoscope reports about one module, fed one block pair at a time."""

    bins: int
    clip: tuple[float, float]
    eps: float
    tol: float = 1e-3
    numel: int = 0
    sums: np.ndarray = field(init=False)
    hist: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.oversample = -(-FINE_BINS // self.bins)
        self.sums, self.hist = kernel.new_buffers(self.bins * self.oversample)

    def update(self, base: np.ndarray, tuned: np.ndarray) -> None:
        """Add one block pair of kernel arrays (`kernel.pair_arrays`): the same elements in the same order."""
        kernel.accumulate(base, tuned, self.eps, self.clip, self.sums, self.hist, self.tol)
        self.numel += base.size

    @property
    def nonfinite(self) -> int:
        return int(self.sums[:, kernel.NONFINITE].sum())

    def result(self) -> dict[str, float | int | bool | np.ndarray]:
        sums = self.sums.sum(axis=0)
        sums[kernel.MAX_ABS] = self.sums[:, kernel.MAX_ABS].max()
        counts = self.hist.sum(axis=0)
        nonfinite = int(sums[kernel.NONFINITE])
        finite = self.numel - nonfinite
        below, above = int(counts[0]), int(counts[-1]) - nonfinite  # the kernel bins non-finite pairs above
        fine = counts[1:-1]
        histogram = fine.reshape(self.bins, self.oversample).sum(axis=1)
        # the paper's histogram: r clamped into the clip range, so out-of-range values pile up at the ends
        clamped = histogram.copy()
        clamped[0] += below
        clamped[-1] += above
        abs_norm = math.sqrt(sums[kernel.DIFF_SQ])
        base_norm = math.sqrt(sums[kernel.BASE_SQ])
        tuned_norm = math.sqrt(sums[kernel.TUNED_SQ])
        inside = sums[kernel.R_N]
        r_mean = sums[kernel.R_S1] / inside if inside else math.nan
        r_var = sums[kernel.R_S2] / inside - r_mean * r_mean if inside else math.nan
        coefficient = bimodality_coefficient(*sums[kernel.R_N : kernel.R_S4 + 1])
        r_std = math.sqrt(max(r_var, 0.0)) if inside else math.nan
        share = centre_share(fine, self.clip, r_mean, r_std)
        clamped_coefficient = clamped_bimodality(finite, sums[kernel.R_S1 : kernel.R_S4 + 1], below, above, self.clip)
        return {
            "numel": self.numel,
            "abs_norm": abs_norm,
            "rel_norm": abs_norm / base_norm if base_norm > 0 else math.nan,  # undefined, not inf, for a zero base
            "base_norm": base_norm,
            "tuned_norm": tuned_norm,
            "cosine": sums[kernel.DOT] / (base_norm * tuned_norm) if base_norm * tuned_norm > 0 else math.nan,
            "max_abs_delta": float(sums[kernel.MAX_ABS]),
            "r_mean": r_mean,
            "r_std": r_std,
            "clipped_share": 1 - inside / finite if finite else 0.0,
            "bimodality_coef": coefficient,
            "centre_share": share,
            "bimodal": bool(coefficient > SARLE_THRESHOLD and share <= MAX_CENTRE_SHARE),
            "changed_share": sums[kernel.CHANGED] / self.numel if self.numel else 0.0,
            "moved_share": sums[kernel.MOVED] / finite if finite else 0.0,
            "nonfinite": nonfinite,
            "edge_share": (clamped[0] + clamped[-1]) / finite if finite else 0.0,
            "clamped_bimodality_coef": clamped_coefficient,
            # under clamping the tallest bar stands on a clip end: a pile a reader takes for a mode
            "clamp_bimodal": bool(finite and max(clamped[0], clamped[-1]) >= clamped[1:-1].max(initial=0)),
            "histogram": histogram.astype(np.int64),
            "clamped_histogram": clamped.astype(np.int64),
        }
