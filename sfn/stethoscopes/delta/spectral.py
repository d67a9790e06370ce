"""The shape of a weight update: its top singular values, and how much of it lies in the base's
principal subspace (`sfn delta --spectral`), one 2-D weight at a time.

The top singular values come from a randomized SVD (Halko, Martinsson and Tropp 2011, Alg. 4.4 with
re-orthonormalized power iterations): a Gaussian sketch of l = k + OVERSAMPLE columns from a generator
seeded with SEED, POWER_ITERATIONS passes of A A^T, then the exact SVD of the small projected matrix.
Matrices whose smaller side is at most l get the exact SVD instead.

Precision. The sketch and the power iterations only choose the basis Q; they multiply in bfloat16
where the CPU does so natively (AVX512-BF16 or AMX: five times float32's speed on the machine of
`benchmarks/README.md`), else in float32, and each basis is orthonormalized in float32. Every reported
number is then float32 arithmetic on the float32 update: the values are the singular values of
Q^T dW, the base subspace share is ||U_B^T dW||^2, and the Frobenius norm in every denominator is
computed, not estimated (float32 dot products over blocks of 4M elements, summed in float64: ~1e-5).

Error of the estimate. Every estimated singular value is a lower bound, sigma_hat_j <= sigma_j (they
are the singular values of Q Q^T A, a projection of A, whatever Q is), so energy shares from them are
lower bounds too, never inflated. The gap shrinks with the spectral gap after l: for q power iterations,
sigma_hat_j >= sigma_j / sqrt(1 + C (sigma_{l+1} / sigma_j)^(4q + 2)) with C of order k n (Gu 2015,
Thm. 5.8, with high probability). So a low-rank update (sigma_{l+1} ~ 0) is recovered to float32
precision, and for directions whose singular value is 3x the (l+1)-th with q = 2 the relative error
is about C * 3^-10 ~ 1e-5 k n; with a flat spectrum (noise) the top values can be underestimated by
a few percent, but then every share is small anyway. A bfloat16 sketch perturbs the basis by about
its rounding, 2^-9 relative; the values' error is second order in that (~1e-5 relative), far inside
these bounds. The tests compare against torch.linalg.svd on matrices of known spectrum (exact low
rank, geometric decay, flat), with either sketch dtype: shares agree to within 0.01.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import torch

from sfn.stethoscopes.delta.columns import SPECTRAL_COLUMNS

SEED = 0
TOP = 64  # singular directions kept: energy_at_64 and the base subspace of base_subspace_share
OVERSAMPLE = 16
POWER_ITERATIONS = 2
BLOCK_ELEMENTS = 1 << 22  # float32 work of spectral_stats goes this many elements (16 MB) at a time


def sketch_dtype() -> torch.dtype:
    """bfloat16 where the CPU multiplies it natively (AVX512-BF16 or AMX tiles), else float32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return torch.bfloat16 if any(getattr(torch.cpu, name, lambda: False)() for name in checks) else torch.float32


def randomized_svd(
    matrix: torch.Tensor,
    k: int = TOP,
    *,
    oversample: int = OVERSAMPLE,
    power: int = POWER_ITERATIONS,
    seed: int = SEED,
    sketch: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(U_k, sigma_k): the top `k` left singular vectors (columns) and values of a matrix, in float32.

    The sketch and power iterations multiply in `sketch` (default `sketch_dtype()`): they only choose
    the basis, which is orthonormalized in float32; the values are those of the float32 matrix
    projected onto it. Deterministic: the sketch comes from a generator seeded with `seed`. Fewer
    than `k` are returned when the matrix has fewer than `k` singular values.
    """
    a = matrix.to(torch.float32)
    width = k + oversample
    if min(a.shape) <= width:
        u, values, _ = torch.linalg.svd(a, full_matrices=False)
        return u[:, :k], values[:k]
    q = _range_basis(matrix.to(sketch or sketch_dtype()), width, power, seed)
    vectors, values = _ritz(q.T @ a)
    return q @ vectors[:, :k], values[:k]


def _range_basis(sketched: torch.Tensor, width: int, power: int, seed: int) -> torch.Tensor:
    """An orthonormal float32 basis (m x width) of the dominant column space of `sketched`, multiplied in its dtype."""
    generator = torch.Generator().manual_seed(seed)
    q = _orthonormal(sketched @ torch.randn(sketched.shape[1], width, generator=generator).to(sketched.dtype))
    for _ in range(power):
        z = _orthonormal(sketched.T @ q.to(sketched.dtype))
        q = _orthonormal(sketched @ z.to(sketched.dtype))
    return q


def _orthonormal(columns: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(columns.to(torch.float32))[0]


def _ritz(small: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, sigma) of C = Q^T A, largest first, through its Gram matrix in float64: C C^T = W diag(sigma^2) W^T."""
    c = small.double()
    squares, vectors = torch.linalg.eigh(c @ c.T)
    order = torch.argsort(squares, descending=True)
    return vectors[:, order].to(torch.float32), squares[order].clamp(min=0).sqrt().to(torch.float32)


def spectral_stats(base: torch.Tensor, tuned: torch.Tensor, sketch: torch.dtype | None = None) -> dict[str, float]:
    """sv1_share, energy_at_8, energy_at_64, stable_rank and base_subspace_share of dW = tuned - base.

    With F = ||dW||_F^2 (exact) and sigma_i the estimated singular values of dW:
    sv1_share = sigma_1^2 / F, energy_at_k = sum_{i<=k} sigma_i^2 / F, stable_rank = F / sigma_1^2, and
    base_subspace_share = ||U_B^T dW||_F^2 / F with U_B the top-64 left singular vectors of the base.
    All are nan when dW is zero or holds a NaN or inf (a non-finite base makes dW non-finite too).
    Besides its inputs, memory holds dW once in the sketch dtype; float32 work goes a block of rows at a time.
    """
    m, n = base.shape
    width = TOP + OVERSAMPLE
    if min(m, n) <= width:
        b = base.to(torch.float32)
        d = tuned.to(torch.float32) - b
        frobenius = _squared_norm(d)
        if not frobenius > 0 or not math.isfinite(frobenius):
            return dict.fromkeys(SPECTRAL_COLUMNS, math.nan)
        top_base = torch.linalg.svd(b, full_matrices=False).U[:, :TOP]
        return _shares(frobenius, torch.linalg.svdvals(d), float(torch.linalg.vector_norm(top_base.T @ d)) ** 2)
    sketch = sketch or sketch_dtype()
    rows = max(BLOCK_ELEMENTS // n, 1)
    sketched = torch.empty((m, n), dtype=sketch)
    frobenius = 0.0
    for start, d, _ in _float32_blocks(base, tuned, rows):
        frobenius += _squared_norm(d)
        sketched[start : start + len(d)] = d
    if not frobenius > 0 or not math.isfinite(frobenius):
        return dict.fromkeys(SPECTRAL_COLUMNS, math.nan)
    q = _range_basis(sketched, width, POWER_ITERATIONS, SEED)
    del sketched
    q_base = _range_basis(base.to(sketch), width, POWER_ITERATIONS, SEED)
    # The float32 projections, one block of rows at a time: Q^T dW, Q_B^T dW and Q_B^T W_B.
    bases = torch.cat([q, q_base], dim=1)
    on_update, on_base = torch.zeros(2 * width, n), torch.zeros(width, n)
    for start, d, b in _float32_blocks(base, tuned, rows):
        on_update += bases[start : start + len(d)].T @ d
        on_base += q_base[start : start + len(d)].T @ b
    _, sigma = _ritz(on_update[:width])
    base_vectors, _ = _ritz(on_base)  # U_B = Q_B W_B[:, :64], so U_B^T dW = W_B[:, :64]^T (Q_B^T dW)
    in_base = float(torch.linalg.vector_norm(base_vectors[:, :TOP].T @ on_update[width:])) ** 2
    return _shares(frobenius, sigma[:TOP], in_base)


def _float32_blocks(
    base: torch.Tensor, tuned: torch.Tensor, rows: int
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(first row, dW block, W_B block) in float32, `rows` rows at a time, in two reused buffers."""
    update, stored = torch.empty(rows, base.shape[1]), torch.empty(rows, base.shape[1])
    for start in range(0, base.shape[0], rows):
        stop = min(start + rows, base.shape[0])
        b, d = stored[: stop - start], update[: stop - start]
        b.copy_(base[start:stop])
        d.copy_(tuned[start:stop])
        d -= b
        yield start, d, b


def _squared_norm(block: torch.Tensor) -> float:
    # BLAS's float32 dot: ~1e-5 relative on 4M elements, where torch's vector_norm drifted 1e-3 on 14M
    flat = block.reshape(-1)
    return float(torch.dot(flat, flat))


def _shares(frobenius: float, sigma: torch.Tensor, in_base: float) -> dict[str, float]:
    # The float32 basis is orthonormal only to ~1e-4 on large matrices (how much depends on the CPU's
    # matmul kernels), so an estimate can overshoot the exact F by that much: shares are capped at 1
    # and the stable rank floored at 1, the bounds they have exactly.
    energy = (sigma.double() ** 2).cumsum(0)
    first = float(energy[0])
    return {
        "sv1_share": min(first / frobenius, 1.0),
        "energy_at_8": min(float(energy[min(8, len(energy)) - 1]) / frobenius, 1.0),
        "energy_at_64": min(float(energy[min(TOP, len(energy)) - 1]) / frobenius, 1.0),
        "stable_rank": max(frobenius / first, 1.0) if first > 0 else math.nan,
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
