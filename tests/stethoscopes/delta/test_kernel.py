"""The fused kernel against plain float64 arithmetic, for every stored dtype it reads."""

import numpy as np
import pytest
import torch

from sfn.stethoscopes.delta import kernel


@pytest.mark.parametrize(
    ("base_dtype", "tuned_dtype"),
    [(torch.bfloat16, torch.bfloat16), (torch.float32, torch.float32), (torch.float16, torch.float16), (torch.bfloat16, torch.float32)],
)
def test_kernel_matches_float64(base_dtype, tuned_dtype):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(10_007, generator=g)
    tuned = base + 0.05 * torch.randn(10_007, generator=g)
    base, tuned = base.to(base_dtype), tuned.to(tuned_dtype)
    sums, hist = kernel.new_buffers(20)
    kernel.accumulate(base, tuned, 1e-8, (-0.5, 0.5), sums, hist)
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
