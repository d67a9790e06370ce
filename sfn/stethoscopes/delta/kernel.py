"""The Delta stethoscope's inner loop: one fused, parallel pass over a block of weights.

For each element pair it decodes the stored value (bfloat16 bits, or float32) and updates every
statistic at once: squared norms, dot product, max |delta|, the relative-change histogram, the
power sums of the in-range relative changes, and three exact counts: pairs whose stored bits differ,
pairs that moved by more than `tol` x |W_B|, and pairs holding a NaN or an infinity. A non-finite pair
is left out of every other statistic (it is counted above the range, which `stats` takes back off). Reading straight from the memory-mapped file with no
intermediate tensors is what keeps `sfn delta` near the speed of reading the bytes; the equivalent
torch code makes about ten passes over memory.

The work is split into chunks of CHUNK elements whose loops the compiler vectorizes; chunk sums are
float32 (at most CHUNK/8 terms per SIMD lane, relative error ~1e-7) and are accumulated across chunks in float64.
"""

from __future__ import annotations


import numba
import numpy as np
import torch
from numba import njit, prange, types
from numba.extending import overload

# Column order of the per-thread sums the kernel fills.
BASE_SQ, TUNED_SQ, DIFF_SQ, DOT, MAX_ABS, R_N, R_S1, R_S2, R_S3, R_S4, CHANGED, MOVED, NONFINITE = range(13)
N_SUMS = 13
EXPONENT = np.uint32(0x7F800000)  # all exponent bits set: an infinity or a NaN (float32 bits)
CHUNK = 256
_VECTOR = {"reassoc", "contract", "nsz"}  # reassociation lets the compiler vectorize the reductions


def _decode(src, start, count, out):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError


@overload(_decode)
def _decode_overload(src, start, count, out):
    if isinstance(src.dtype, types.Integer):  # raw bfloat16 bits: the high half of a float32

        def decode_bfloat16(src, start, count, out):
            for j in range(count):
                out[j] = np.uint32(src[start + j]) << np.uint32(16)
            return out[:count].view(np.float32)

        return decode_bfloat16

    def decode_float(src, start, count, out):
        values = out[:count].view(np.float32)
        for j in range(count):
            values[j] = src[start + j]
        return values

    return decode_float


# nnan lets the compiler vectorize the max; NaN weights then give meaningless sums but never a bad
# index: the bins are computed in `_moments_and_bins`, which keeps NaN semantics.
@njit(fastmath=_VECTOR | {"nnan"})
def _norms_and_relative(base, tuned, relative, eps, tol):  # pragma: no cover - compiled
    base_sq = tuned_sq = diff_sq = dot = largest = moved = np.float32(0)
    for j in range(base.size):
        b = base[j]
        v = tuned[j]
        d = v - b
        base_sq += b * b
        tuned_sq += v * v
        diff_sq += d * d
        dot += b * v
        largest = max(largest, abs(d))
        moved += np.float32(1) if abs(d) > tol * abs(b) else np.float32(0)
        relative[j] = d / (abs(b) + eps)
    return base_sq, tuned_sq, diff_sq, dot, largest, moved


@njit
def _bit_counts(base_bits, tuned_bits, count):  # pragma: no cover - compiled
    """(pairs whose float32 bits differ, pairs with a NaN or inf): integer tests, immune to fastmath."""
    changed = nonfinite = 0
    for j in range(count):
        a = base_bits[j]
        c = tuned_bits[j]
        changed += a != c
        nonfinite += ((a & EXPONENT) == EXPONENT) | ((c & EXPONENT) == EXPONENT)
    return changed, nonfinite


@njit
def _drop_nonfinite(base_bits, tuned_bits, count, flags):  # pragma: no cover - compiled
    """Zero the non-finite pairs, so that they add nothing to the sums, and flag them."""
    for j in range(count):
        flags[j] = ((base_bits[j] & EXPONENT) == EXPONENT) | ((tuned_bits[j] & EXPONENT) == EXPONENT)
        if flags[j]:
            base_bits[j] = np.uint32(0)
            tuned_bits[j] = np.uint32(0)


@njit
def _mark_nonfinite(relative, count, flags):  # pragma: no cover - compiled
    for j in range(count):
        if flags[j]:
            relative[j] = np.float32(np.nan)  # binned above the range; stats takes it back off


@njit(fastmath=_VECTOR)
def _moments_and_bins(relative, bin_of, lo, hi, scale, bins):  # pragma: no cover - compiled
    count = s1 = s2 = s3 = s4 = np.float32(0)
    top = np.float32(bins)
    for j in range(relative.size):
        r = relative[j]
        inside = (r >= lo) & (r <= hi)
        rc = r if inside else np.float32(0)
        r2 = rc * rc
        count += np.float32(1) if inside else np.float32(0)
        s1 += rc
        s2 += r2
        s3 += r2 * rc
        s4 += r2 * r2
        # slot 0: below the range; 1..bins: the bins (hi itself in the last); bins+1: above, or nan
        position = (r - lo) * scale + np.float32(1)
        position = position if position > np.float32(0) else np.float32(0)
        position = position if position < top + np.float32(1) else (top if r <= hi else top + np.float32(1))
        position = position if r == r else top + np.float32(1)
        bin_of[j] = np.int32(position)
    return count, s1, s2, s3, s4


@njit(parallel=True, cache=True, nogil=True)
def _accumulate(base, tuned, eps, tol, lo, hi, sums, hist):  # pragma: no cover - compiled
    n = base.size
    threads = sums.shape[0]
    bins = hist.shape[1] - 2
    scale = np.float32(bins / (hi - lo))
    eps32, tol32, lo32, hi32 = np.float32(eps), np.float32(tol), np.float32(lo), np.float32(hi)
    per_thread = (n + threads - 1) // threads
    for t in prange(threads):
        base_bits = np.empty(CHUNK, np.uint32)
        tuned_bits = np.empty(CHUNK, np.uint32)
        relative = np.empty(CHUNK, np.float32)
        bin_of = np.empty(CHUNK, np.int32)
        flags = np.empty(CHUNK, np.bool_)
        stop = min(n, (t + 1) * per_thread)
        for start in range(t * per_thread, stop, CHUNK):
            count = min(CHUNK, stop - start)
            b = _decode(base, start, count, base_bits)
            v = _decode(tuned, start, count, tuned_bits)
            changed, nonfinite = _bit_counts(base_bits, tuned_bits, count)
            sums[t, CHANGED] += changed
            sums[t, NONFINITE] += nonfinite
            if nonfinite:
                _drop_nonfinite(base_bits, tuned_bits, count, flags)
            base_sq, tuned_sq, diff_sq, dot, largest, moved = _norms_and_relative(b, v, relative[:count], eps32, tol32)
            if nonfinite:
                _mark_nonfinite(relative, count, flags)
            sums[t, BASE_SQ] += base_sq
            sums[t, TUNED_SQ] += tuned_sq
            sums[t, DIFF_SQ] += diff_sq
            sums[t, DOT] += dot
            sums[t, MAX_ABS] = max(sums[t, MAX_ABS], largest)
            sums[t, MOVED] += moved
            r_n, r_s1, r_s2, r_s3, r_s4 = _moments_and_bins(relative[:count], bin_of, lo32, hi32, scale, bins)
            sums[t, R_N] += r_n
            sums[t, R_S1] += r_s1
            sums[t, R_S2] += r_s2
            sums[t, R_S3] += r_s3
            sums[t, R_S4] += r_s4
            for j in range(count):
                hist[t, bin_of[j]] += 1


def as_kernel_array(block: torch.Tensor) -> np.ndarray:
    """A flat numpy view the kernel can read: bfloat16 as its raw bits, float32 as is, others converted."""
    block = block.reshape(-1)
    if not block.is_contiguous():
        block = block.contiguous()
    if block.dtype == torch.bfloat16:
        return block.view(torch.uint16).numpy()
    return block.to(torch.float32).numpy()


def accumulate(
    base: torch.Tensor,
    tuned: torch.Tensor,
    eps: float,
    clip: tuple[float, float],
    sums: np.ndarray,
    hist: np.ndarray,
    tol: float = 1e-3,
) -> None:
    """Add one block pair to `sums` (threads x N_SUMS float64) and `hist` (threads x bins+2 int64).

    `hist[:, 0]` and `hist[:, -1]` count relative changes below and above the clip range (the last
    also counts the non-finite pairs, `sums[:, NONFINITE]`). A pair counts as moved when
    |W_R - W_B| > tol x |W_B|.
    """
    if base.numel() != tuned.numel():
        raise ValueError(f"block sizes differ: {base.numel()} vs {tuned.numel()}")
    base_array, tuned_array = as_kernel_array(base), as_kernel_array(tuned)
    if base_array.dtype != tuned_array.dtype:  # e.g. bf16 base, fp32 tune
        base_array = as_kernel_array(base.to(torch.float32))
        tuned_array = as_kernel_array(tuned.to(torch.float32))
    _accumulate(base_array, tuned_array, float(eps), float(tol), float(clip[0]), float(clip[1]), sums, hist)


def new_buffers(bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed per-thread (sums, hist) buffers for `accumulate`."""
    threads = numba.get_num_threads()
    return np.zeros((threads, N_SUMS)), np.zeros((threads, bins + 2), np.int64)


