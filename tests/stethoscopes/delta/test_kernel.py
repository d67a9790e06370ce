"""The fused kernel against plain float64 arithmetic, for every stored dtype it reads."""

import numpy as np
import pytest
import torch

from sfn.io.dtypes import dtype_name, tensor_bits
from sfn.stethoscopes.delta import kernel


def kernel_pair(base: torch.Tensor, tuned: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The kernel arrays of two tensors, as `sfn.delta` makes them from two checkpoints' stored bits."""
    return kernel.pair_arrays(tensor_bits(base), dtype_name(base.dtype), tensor_bits(tuned), dtype_name(tuned.dtype))


@pytest.mark.parametrize(
    ("base_dtype", "tuned_dtype"),
    [(torch.bfloat16, torch.bfloat16), (torch.float32, torch.float32), (torch.float16, torch.float16), (torch.bfloat16, torch.float32),
     (torch.float64, torch.float64), (torch.float16, torch.bfloat16)],
)
def test_kernel_matches_float64(base_dtype, tuned_dtype):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(10_007, generator=g)
    tuned = base + 0.05 * torch.randn(10_007, generator=g)
    base, tuned = base.to(base_dtype), tuned.to(tuned_dtype)
    sums, hist = kernel.new_buffers(20)
    kernel.accumulate(*kernel_pair(base, tuned), 1e-8, (-0.5, 0.5), sums, hist)
    total = sums.sum(axis=0)
    b, t = base.double(), tuned.double()
    d = t - b
    r = d / (b.abs() + 1e-8)
    inside = r[(r >= -0.5) & (r <= 0.5)]
    assert total[kernel.DIFF_SQ] == pytest.approx((d * d).sum().item(), rel=1e-6)
    assert total[kernel.BASE_SQ] == pytest.approx((b * b).sum().item(), rel=1e-6)
    assert total[kernel.DOT] == pytest.approx((b * t).sum().item(), rel=1e-6)
    assert sums[:, kernel.MAX_ABS].max() == pytest.approx(d.abs().max().item(), rel=1e-6)
    assert total[kernel.R_N] == inside.numel()
    assert total[kernel.R_S2] == pytest.approx((inside**2).sum().item(), rel=1e-5)
    counts = hist.sum(axis=0)
    assert counts[0] == (r < -0.5).sum().item() and counts[-1] == (r > 0.5).sum().item()
    expected = np.histogram(inside.numpy(), 20, (-0.5, 0.5))[0]
    assert counts[1:-1].sum() == expected.sum()
    # r is binned in float32: values on a bin edge (common for bf16) may land in the neighbouring bin
    assert np.abs(np.cumsum(counts[1:-1]) - np.cumsum(expected)).max() <= 0.002 * base.numel()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("by_rows", [True, False])
def test_line_sums_match_float64_and_leave_out_nonfinite_pairs(dtype, by_rows):
    g = torch.Generator().manual_seed(1)
    base = torch.randn(37, 600, generator=g)  # 600 columns: two full chunks and a partial one per row
    tuned = base + 0.01 * torch.randn(37, 600, generator=g)
    base[3, 5], tuned[7, 300], base[36, 599] = float("nan"), float("inf"), float("-inf")
    base, tuned = base.to(dtype), tuned.to(dtype)
    diff_sq, base_sq = kernel.line_sums(*kernel_pair(base, tuned), by_rows)
    b, t = base.double(), tuned.double()
    finite = torch.isfinite(b) & torch.isfinite(t)
    d = torch.where(finite, t - b, 0.0)
    b = torch.where(finite, b, 0.0)
    axis = 1 if by_rows else 0
    np.testing.assert_allclose(diff_sq, (d * d).sum(axis).numpy(), rtol=1e-6)
    np.testing.assert_allclose(base_sq, (b * b).sum(axis).numpy(), rtol=1e-6)


def test_kernel_counts_a_nonfinite_pair_above_the_range_and_nowhere_else():
    base = torch.full((1000,), 0.5)
    tuned = base * 1.01
    base[10], tuned[500] = float("nan"), float("inf")
    sums, hist = kernel.new_buffers(10)
    kernel.accumulate(*kernel_pair(base, tuned), 1e-8, (-1.0, 1.0), sums, hist)
    total, counts = sums.sum(axis=0), hist.sum(axis=0)
    assert total[kernel.NONFINITE] == 2 and total[kernel.R_N] == 998 and counts[-1] == 2 and counts[0] == 0
    assert total[kernel.CHANGED] == 1000
    assert total[kernel.BASE_SQ] == pytest.approx(998 * 0.25, rel=1e-6)
    assert sums[:, kernel.MAX_ABS].max() == pytest.approx(0.005, rel=1e-5)
    assert total[kernel.R_S1] == pytest.approx(998 * 0.01, rel=1e-5)


def test_kernel_refuses_bits_it_cannot_read_as_one_pair():
    bf16, f32 = torch.ones(4, dtype=torch.bfloat16), torch.ones(4)
    sums, hist = kernel.new_buffers(10)
    with pytest.raises(ValueError, match="pair_arrays"):  # stored bits of two dtypes, not converted alike
        kernel.accumulate(tensor_bits(bf16), tensor_bits(f32), 1e-8, (-1.0, 1.0), sums, hist)
    with pytest.raises(ValueError, match="shapes differ"):
        kernel.accumulate(*kernel_pair(f32, torch.ones(5)), 1e-8, (-1.0, 1.0), sums, hist)
