"""The randomized spectrum against torch.linalg.svd on matrices whose spectrum is known."""

from __future__ import annotations

import math

import pytest
import torch

from sfn.stethoscopes.delta.spectral import randomized_svd, spectral_stats


def with_spectrum(m: int, n: int, sigma: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """U diag(sigma) V^T with random orthonormal U (m x r) and V (n x r)."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, len(sigma), generator=g))
    v, _ = torch.linalg.qr(torch.randn(n, len(sigma), generator=g))
    return u @ torch.diag(sigma) @ v.T, u, v


SPECTRA = {
    "rank 5": torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]),
    "geometric": 0.9 ** torch.arange(200, dtype=torch.float32),
    "flat": torch.ones(200),
}


@pytest.mark.parametrize("name", list(SPECTRA))
def test_shares_agree_with_the_exact_svd(name):
    sigma = SPECTRA[name]
    delta, _, _ = with_spectrum(400, 300, sigma, seed=1)
    base = torch.randn(400, 300, generator=torch.Generator().manual_seed(2))
    stats = spectral_stats(base, base + delta)
    exact = torch.linalg.svd(delta).S.double() ** 2
    total = exact.sum()
    assert stats["sv1_share"] == pytest.approx(float(exact[0] / total), abs=0.01)
    assert stats["energy_at_8"] == pytest.approx(float(exact[:8].sum() / total), abs=0.01)
    assert stats["energy_at_64"] == pytest.approx(float(exact[:64].sum() / total), abs=0.01)
    assert stats["stable_rank"] == pytest.approx(float(total / exact[0]), rel=0.02)
    u_base = torch.linalg.svd(base).U[:, :64]
    inside = float(torch.linalg.matrix_norm(u_base.T @ delta) ** 2 / total)
    assert stats["base_subspace_share"] == pytest.approx(inside, abs=0.05)


def test_low_rank_values_are_recovered_to_float32_precision_and_never_overestimated():
    sigma = SPECTRA["geometric"]
    matrix, _, _ = with_spectrum(500, 350, sigma, seed=3)
    _, estimate = randomized_svd(matrix, 64)
    assert estimate.shape == (64,)
    assert torch.all(estimate <= sigma[:64] * (1 + 1e-5))
    assert torch.allclose(estimate[:20], sigma[:20], rtol=1e-4)
    u, again = randomized_svd(matrix, 64)
    assert torch.equal(again, estimate)  # fixed seed: the same answer every time
    assert torch.allclose(u.T @ u, torch.eye(64), atol=1e-4)


def test_an_update_inside_the_base_subspace_has_share_one():
    base, u, _ = with_spectrum(300, 200, 10 * 0.95 ** torch.arange(200, dtype=torch.float32), seed=4)
    g = torch.Generator().manual_seed(5)
    update = u[:, :3] @ torch.randn(3, 200, generator=g)  # along the base's top 3 left singular vectors
    stats = spectral_stats(base, base + 0.01 * update)
    assert stats["base_subspace_share"] == pytest.approx(1.0, abs=1e-4)
    assert stats["energy_at_8"] == pytest.approx(1.0, abs=1e-4)
    orthogonal = torch.randn(300, 200, generator=g)
    orthogonal -= u[:, :64] @ (u[:, :64].T @ orthogonal)
    assert spectral_stats(base, base + orthogonal)["base_subspace_share"] < 0.02


def test_no_change_gives_nan_not_a_division_error():
    base = torch.randn(100, 90, generator=torch.Generator().manual_seed(6))
    assert all(math.isnan(v) for v in spectral_stats(base, base.clone()).values())
