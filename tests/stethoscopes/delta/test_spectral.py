"""The randomized spectrum against torch.linalg.svd on matrices whose spectrum is known, with the
sketch multiplied in float32 and in bfloat16 (what `sketch_dtype()` picks on CPUs with native bf16)."""

from __future__ import annotations

import math

import pytest
import torch

from sfn.stethoscopes.delta.spectral import randomized_svd, sketch_dtype, spectral_stats


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


SKETCHES = [torch.float32, torch.bfloat16]


@pytest.mark.parametrize("sketch", SKETCHES)
@pytest.mark.parametrize("name", list(SPECTRA))
def test_shares_agree_with_the_exact_svd(name, sketch):
    sigma = SPECTRA[name]
    delta, _, _ = with_spectrum(400, 300, sigma, seed=1)
    base = torch.randn(400, 300, generator=torch.Generator().manual_seed(2))
    stats = spectral_stats(base, base + delta, sketch=sketch)
    exact = torch.linalg.svd(delta).S.double() ** 2
    total = exact.sum()
    assert stats["sv1_share"] == pytest.approx(float(exact[0] / total), abs=0.01)
    assert stats["energy_at_8"] == pytest.approx(float(exact[:8].sum() / total), abs=0.01)
    assert stats["energy_at_64"] == pytest.approx(float(exact[:64].sum() / total), abs=0.01)
    assert stats["stable_rank"] == pytest.approx(float(total / exact[0]), rel=0.02)
    u_base = torch.linalg.svd(base).U[:, :64]
    inside = float(torch.linalg.matrix_norm(u_base.T @ delta) ** 2 / total)
    assert stats["base_subspace_share"] == pytest.approx(inside, abs=0.05)


@pytest.mark.parametrize("sketch", SKETCHES)
def test_low_rank_values_are_recovered_to_float32_precision_and_never_overestimated(sketch):
    sigma = SPECTRA["geometric"]
    matrix, _, _ = with_spectrum(500, 350, sigma, seed=3)
    _, estimate = randomized_svd(matrix, 64, sketch=sketch)
    assert estimate.shape == (64,)
    assert torch.all(estimate <= sigma[:64] * (1 + 1e-5))
    assert torch.allclose(estimate[:20], sigma[:20], rtol=2e-5)
    u, again = randomized_svd(matrix, 64, sketch=sketch)
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


def test_the_sketch_dtype_moves_no_share_by_more_than_its_rounding():
    delta, _, _ = with_spectrum(400, 300, SPECTRA["geometric"], seed=7)
    base = torch.randn(400, 300, generator=torch.Generator().manual_seed(8)).to(torch.bfloat16)
    tuned = (base.float() + delta).to(torch.bfloat16)  # a bf16 pair, as checkpoints store it
    stored = (base.clone(), tuned.clone())
    exact = spectral_stats(base, tuned, sketch=torch.float32)
    fast = spectral_stats(base, tuned, sketch=torch.bfloat16)
    for column, value in exact.items():
        assert fast[column] == pytest.approx(value, rel=1e-3), column
    assert torch.equal(base, stored[0]) and torch.equal(tuned, stored[1])  # the inputs are left as they were
    assert sketch_dtype() in (torch.float32, torch.bfloat16)


def test_the_denominator_is_exact_on_a_large_rank_one_update():
    # sigma_1^2 = ||dW||_F^2 exactly for rank one; a float32 norm over the 6M elements at once drifts ~1e-4
    g = torch.Generator().manual_seed(9)
    base = torch.randn(2000, 3000, generator=g)
    update = torch.randn(2000, 1, generator=g) @ torch.randn(1, 3000, generator=g)
    stats = spectral_stats(base, base + 1e-3 * update)
    assert stats["sv1_share"] == pytest.approx(1.0, abs=2e-5)
    assert stats["stable_rank"] == pytest.approx(1.0, abs=2e-5)
