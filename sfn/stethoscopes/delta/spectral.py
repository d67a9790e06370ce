"""The shape of a weight update: its top singular values, and how much of it lies in the base's
principal subspace (`sfn delta --spectral`), one 2-D weight at a time, in float32.

The top singular values come from a randomized SVD (Halko, Martinsson and Tropp 2011, Alg. 4.4 with
re-orthonormalized power iterations): a Gaussian sketch of l = k + OVERSAMPLE columns from a generator
seeded with SEED, POWER_ITERATIONS passes of A A^T, then the exact SVD of the small projected matrix.
Matrices whose smaller side is at most l get the exact SVD instead.

Error of the estimate. Every estimated singular value is a lower bound, sigma_hat_j <= sigma_j (they
are the singular values of Q Q^T A, a projection of A), so energy shares from them are lower bounds
too, never inflated. The gap shrinks with the spectral gap after l: for q power iterations,
sigma_hat_j >= sigma_j / sqrt(1 + C (sigma_{l+1} / sigma_j)^(4q + 2)) with C of order k n (Gu 2015,
Thm. 5.8, with high probability). So a low-rank update (sigma_{l+1} ~ 0) is recovered to float32
precision, and for directions whose singular value is 3x the (l+1)-th with q = 2 the relative error
is about C * 3^-10 ~ 1e-5 k n; with a flat spectrum (noise) the top values can be underestimated by
a few percent, but then every share is small anyway. The tests compare against torch.linalg.svd on
matrices of known spectrum (exact low rank, geometric decay, flat): shares agree to within 0.01.
The Frobenius norm in every denominator is computed, not estimated (float32 pairwise sums, ~1e-6).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import torch

SEED = 0
TOP = 64  # singular directions kept: energy_at_64 and the base subspace of base_subspace_share
OVERSAMPLE = 16
POWER_ITERATIONS = 2
SPECTRAL_COLUMNS = ["sv1_share", "energy_at_8", "energy_at_64", "stable_rank", "base_subspace_share"]


def randomized_svd(
    matrix: torch.Tensor, k: int = TOP, *, oversample: int = OVERSAMPLE, power: int = POWER_ITERATIONS, seed: int = SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """(U_k, sigma_k): the top `k` left singular vectors (columns) and values of a float32 matrix.

    Deterministic: the sketch comes from a generator seeded with `seed`. Fewer than `k` are returned
    when the matrix has fewer than `k` singular values.
    """
    a = matrix.to(torch.float32)
    m, n = a.shape
    width = k + oversample
    if min(m, n) <= width:
        u, s, _ = torch.linalg.svd(a, full_matrices=False)
        return u[:, :k], s[:k]
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(a @ torch.randn(n, width, generator=generator))
    for _ in range(power):
        z, _ = torch.linalg.qr(a.T @ q)
        q, _ = torch.linalg.qr(a @ z)
    u, s, _ = torch.linalg.svd(q.T @ a, full_matrices=False)
    return q @ u[:, :k], s[:k]


def spectral_stats(base: torch.Tensor, tuned: torch.Tensor) -> dict[str, float]:
    """sv1_share, energy_at_8, energy_at_64, stable_rank and base_subspace_share of dW = tuned - base.

    With F = ||dW||_F^2 (exact) and sigma_i the estimated singular values of dW:
    sv1_share = sigma_1^2 / F, energy_at_k = sum_{i<=k} sigma_i^2 / F, stable_rank = F / sigma_1^2, and
    base_subspace_share = ||U_B^T dW||_F^2 / F with U_B the top-64 left singular vectors of the base.
    All are nan when dW is zero or holds a NaN or inf.
    """
    b = base.to(torch.float32)
    d = tuned.to(torch.float32) - b
    frobenius = float(torch.linalg.vector_norm(d)) ** 2 if d.numel() else 0.0
    if not frobenius > 0 or not math.isfinite(frobenius) or not bool(torch.isfinite(b).all()):
        return dict.fromkeys(SPECTRAL_COLUMNS, math.nan)
    _, sigma = randomized_svd(d)
    energy = (sigma.double() ** 2).cumsum(0)
    top_base, _ = randomized_svd(b)
    in_base = float(torch.linalg.vector_norm(top_base.T @ d)) ** 2
    first = float(energy[0])
    return {
        "sv1_share": min(first / frobenius, 1.0),
        "energy_at_8": min(float(energy[min(8, len(energy)) - 1]) / frobenius, 1.0),
        "energy_at_64": min(float(energy[min(TOP, len(energy)) - 1]) / frobenius, 1.0),
        "stable_rank": frobenius / first if first > 0 else math.nan,
        "base_subspace_share": min(in_base / frobenius, 1.0),
    }


class SpectralWorkers:
    """`spectral_stats` of one weight pair per worker thread, while the caller streams on.

    Each worker runs torch on one intra-op thread: parallel across tensors, not inside a product.
    Intra-op threads on cores that also run the Delta kernel (or other jobs) spin on each other at
    every barrier: a 1536 x 8960 update cost 7.7 CPU s with two of them and 1.1 with one. At most one
    pair per worker is in flight, so memory stays at a few tensors. Disabled, it starts nothing.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.pending: list[Future] = []

    def __enter__(self) -> "SpectralWorkers":
        if self.enabled:
            self.threads = torch.get_num_threads()
            self.workers = max(self.threads, 1)
            torch.set_num_threads(1)
            self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sfn-spectral")
        return self

    def submit(self, load: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> Future:
        """Run `spectral_stats(*load())` on a worker, after waiting for one if all are busy."""
        while len(self.pending) >= self.workers:
            wait(self.pending, return_when=FIRST_COMPLETED)
            self.pending = [f for f in self.pending if not f.done()]
        future = self.pool.submit(lambda: spectral_stats(*load()))
        self.pending.append(future)
        return future

    def __exit__(self, *exc_info: object) -> None:
        if self.enabled:
            self.pool.shutdown(wait=True, cancel_futures=exc_info[0] is not None)
            torch.set_num_threads(self.threads)
