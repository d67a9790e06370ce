"""The Delta stethoscope's inner loop: one fused, parallel pass over a block of weights.

For each element pair it decodes the stored value (bfloat16 bits, or float32) and updates every
statistic at once: squared norms, dot product, max |delta|, the relative-change histogram, the
power sums of the in-range relative changes, and three exact counts: pairs whose stored bits differ,
pairs that moved by more than `tol` x |W_B|, and pairs holding a NaN or an infinity. A non-finite pair
is left out of every other statistic (it is counted above the range, which `stats` takes back off).
Reading straight from the memory-mapped file with no intermediate tensors is what keeps `sfn delta`
near the speed of reading the bytes; the equivalent torch code makes about ten passes over memory.

The work is split into chunks of CHUNK elements, each taken in three loops over buffers that stay
in L1: decode and count the bits (integers), every float statistic and each element's bin
(vectorized: 8 lanes), then the histogram's scatter. What keeps the float loop vectorized, and must
stay so (see `benchmarks/bench_kernel.py`): numpy's error model (no zero-division branch around
r's division), no float `max` in it (the max |delta| is an integer max over the bits of |d|, the
same order for non-negative floats), and fast-math flags (reassociation for the sums; no NaN can
reach it, non-finite pairs are zeroed first). The scatter counts into four interleaved copies of
the histogram, so that runs of equal bins (most r of a bf16 fine-tune are exactly 0) do not wait on
each other's stores. Chunk sums are float32 (at most CHUNK/8 terms per SIMD lane, relative error
~1e-7) and are accumulated across chunks in float64.
"""

from __future__ import annotations

import os

# OpenMP's workers spin for a while after each parallel region, taking the cores from whatever runs
# next (torch's matrix products under --spectral ran several times slower); numba's own pool sleeps
# at once. Unless the user chose a layer: set in the environment (numba re-reads its config from it)
# and in numba.config (read at the first parallel launch, if numba was imported before us).
_LAYER_CHOSEN = "NUMBA_THREADING_LAYER" in os.environ
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402
from numba.extending import overload  # noqa: E402

from sfn.io.dtypes import to_float32  # noqa: E402

if not _LAYER_CHOSEN:
    numba.config.THREADING_LAYER = "workqueue"

# Column order of the per-thread sums the kernel fills.
BASE_SQ, TUNED_SQ, DIFF_SQ, DOT, MAX_ABS, R_N, R_S1, R_S2, R_S3, R_S4, CHANGED, MOVED, NONFINITE = range(13)
N_SUMS = 13
EXPONENT = np.uint32(0x7F800000)  # all exponent bits set: an infinity or a NaN (float32 bits)
MAGNITUDE = np.uint32(0x7FFFFFFF)
CHUNK = 256
COPIES = 4  # interleaved histogram copies in the scatter
_FLOAT = {"reassoc", "contract", "nsz", "nnan"}



def _widen(bits):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError


@overload(_widen)
def _widen_overload(bits):
    if bits.bitwidth == 16:  # bfloat16: the high half of a float32
        return lambda bits: np.uint32(bits) << np.uint32(16)
    return lambda bits: np.uint32(bits)


@njit(error_model="numpy")
def _decode_and_count(base, tuned, base_bits, tuned_bits):  # pragma: no cover - compiled
    """Widen a chunk to float32 bits; (pairs whose bits differ, pairs with a NaN or inf): integer
    tests, immune to fast-math. The chunk comes sliced: indexing the whole array at start + j, a
    signed index LLVM cannot prove non-negative, kept a wraparound test in the loop and made it
    scalar (1.6 ns a pair instead of 0.43, `benchmarks/README.md`)."""
    changed = nonfinite = 0
    for j in range(base.size):
        a = _widen(base[j])
        c = _widen(tuned[j])
        base_bits[j] = a
        tuned_bits[j] = c
        changed += a != c
        nonfinite += ((a & EXPONENT) == EXPONENT) | ((c & EXPONENT) == EXPONENT)
    return changed, nonfinite


@njit(error_model="numpy")
def _drop_nonfinite(base_bits, tuned_bits, count, flags):  # pragma: no cover - compiled
    """Zero the non-finite pairs, so that they add nothing to the sums, and flag them."""
    for j in range(count):
        flags[j] = ((base_bits[j] & EXPONENT) == EXPONENT) | ((tuned_bits[j] & EXPONENT) == EXPONENT)
        if flags[j]:
            base_bits[j] = np.uint32(0)
            tuned_bits[j] = np.uint32(0)


@njit(fastmath=_FLOAT, error_model="numpy")
def _floats(base, tuned, diff, bin_of, eps, tol, lo, hi, scale, top, sums):  # pragma: no cover - compiled
    """Every float statistic of a chunk of finite pairs; writes d (for the max) and each r's bin."""
    base_sq = tuned_sq = diff_sq = dot = moved = np.float32(0)
    count = s1 = s2 = s3 = s4 = np.float32(0)
    for j in range(base.size):
        b = base[j]
        v = tuned[j]
        d = v - b
        base_sq += b * b
        tuned_sq += v * v
        diff_sq += d * d
        dot += b * v
        moved += np.float32(1) if abs(d) > tol * abs(b) else np.float32(0)
        diff[j] = d
        r = d / (abs(b) + eps)
        inside = (r >= lo) & (r <= hi)
        rc = r if inside else np.float32(0)
        r2 = rc * rc
        count += np.float32(1) if inside else np.float32(0)
        s1 += rc
        s2 += r2
        s3 += r2 * rc
        s4 += r2 * r2
        # slot 0: below the range; 1..bins: the bins (hi itself in the last); bins+1: above
        position = (r - lo) * scale + np.float32(1)
        position = position if position > np.float32(0) else np.float32(0)
        position = position if position < top + np.float32(1) else (top if r <= hi else top + np.float32(1))
        bin_of[j] = np.int32(position)
    sums[BASE_SQ] += base_sq
    sums[TUNED_SQ] += tuned_sq
    sums[DIFF_SQ] += diff_sq
    sums[DOT] += dot
    sums[MOVED] += moved
    sums[R_N] += count
    sums[R_S1] += s1
    sums[R_S2] += s2
    sums[R_S3] += s3
    sums[R_S4] += s4


@njit(error_model="numpy")
def _largest(diff_bits):  # pragma: no cover - compiled
    """max |d| of a chunk, as the float32 bits of |d| (their integer order is the float order)."""
    largest = np.uint32(0)
    for j in range(diff_bits.size):
        magnitude = diff_bits[j] & MAGNITUDE
        largest = magnitude if magnitude > largest else largest
    return largest


@njit(error_model="numpy")
def _scatter(bin_of, count, copies, width):  # pragma: no cover - compiled
    whole = count - count % COPIES
    for j in range(0, whole, COPIES):
        for k in range(COPIES):
            copies[k * width + bin_of[j + k]] += 1
    for j in range(whole, count):
        copies[bin_of[j]] += 1


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _accumulate(base, tuned, eps, tol, lo, hi, sums, hist):  # pragma: no cover - compiled
    n = base.size
    threads = sums.shape[0]
    width = hist.shape[1]
    bins = width - 2
    scale = np.float32(bins / (hi - lo))
    top = np.float32(bins)
    eps32, tol32, lo32, hi32 = np.float32(eps), np.float32(tol), np.float32(lo), np.float32(hi)
    per_thread = (n + threads - 1) // threads
    for t in prange(threads):
        base_bits = np.empty(CHUNK, np.uint32)
        tuned_bits = np.empty(CHUNK, np.uint32)
        diff = np.empty(CHUNK, np.float32)
        bin_of = np.empty(CHUNK, np.int32)
        flags = np.empty(CHUNK, np.bool_)
        copies = np.zeros(COPIES * width, np.int64)
        largest = np.zeros(1, np.uint32)
        stop = min(n, (t + 1) * per_thread)
        for start in range(t * per_thread, stop, CHUNK):
            count = min(CHUNK, stop - start)
            changed, nonfinite = _decode_and_count(base[start : start + count], tuned[start : start + count], base_bits, tuned_bits)
            sums[t, CHANGED] += changed
            sums[t, NONFINITE] += nonfinite
            if nonfinite:
                _drop_nonfinite(base_bits, tuned_bits, count, flags)
            b = base_bits[:count].view(np.float32)
            v = tuned_bits[:count].view(np.float32)
            _floats(b, v, diff[:count], bin_of, eps32, tol32, lo32, hi32, scale, top, sums[t])
            if nonfinite:  # a zeroed pair counted as r = 0 inside the range: move it above, out of the count
                for j in range(count):
                    if flags[j]:
                        bin_of[j] = bins + 1
                        sums[t, R_N] -= 1
            largest[0] = max(largest[0], _largest(diff[:count].view(np.uint32)))
            _scatter(bin_of, count, copies, width)
        sums[t, MAX_ABS] = max(sums[t, MAX_ABS], largest.view(np.float32)[0])
        for k in range(COPIES):
            for i in range(width):
                hist[t, i] += copies[k * width + i]


@njit(error_model="numpy")
def _finite_bits(base, tuned, base_bits, tuned_bits):  # pragma: no cover - compiled
    """Widen a (sliced) chunk to float32 bits, zeroing the pairs that hold a NaN or inf (left out, as above)."""
    for j in range(base.size):
        a = _widen(base[j])
        c = _widen(tuned[j])
        bad = ((a & EXPONENT) == EXPONENT) | ((c & EXPONENT) == EXPONENT)
        base_bits[j] = np.uint32(0) if bad else a
        tuned_bits[j] = np.uint32(0) if bad else c


@njit(fastmath=_FLOAT, error_model="numpy")
def _squares(base, tuned):  # pragma: no cover - compiled
    diff_sq = base_sq = np.float32(0)
    for j in range(base.size):
        d = tuned[j] - base[j]
        diff_sq += d * d
        base_sq += base[j] * base[j]
    return diff_sq, base_sq


@njit(fastmath=_FLOAT, error_model="numpy")
def _add_squares(base, tuned, diff_sq, base_sq):  # pragma: no cover - compiled
    for j in range(base.size):
        d = tuned[j] - base[j]
        diff_sq[j] += d * d
        base_sq[j] += base[j] * base[j]


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _line_sums(base, tuned, columns, by_rows, diff_sq, base_sq):  # pragma: no cover - compiled
    """Per row (or per column) of a row-major block: sums of (W_R - W_B)^2 and W_B^2 into the
    thread's row of `diff_sq` and `base_sq` (threads x rows or threads x columns, float64)."""
    rows = base.size // columns
    threads = diff_sq.shape[0]
    per_thread = (rows + threads - 1) // threads
    for t in prange(threads):
        base_bits = np.empty(CHUNK, np.uint32)
        tuned_bits = np.empty(CHUNK, np.uint32)
        for i in range(t * per_thread, min(rows, (t + 1) * per_thread)):
            for start in range(0, columns, CHUNK):
                count = min(CHUNK, columns - start)
                first = i * columns + start
                _finite_bits(base[first : first + count], tuned[first : first + count], base_bits, tuned_bits)
                b = base_bits[:count].view(np.float32)
                v = tuned_bits[:count].view(np.float32)
                if by_rows:
                    diff, square = _squares(b, v)
                    diff_sq[t, i] += diff
                    base_sq[t, i] += square
                else:
                    _add_squares(b, v, diff_sq[t, start : start + count], base_sq[t, start : start + count])


def line_sums(base: np.ndarray, tuned: np.ndarray, by_rows: bool) -> tuple[np.ndarray, np.ndarray]:
    """(sum of (W_R - W_B)^2, sum of W_B^2) per row (`by_rows`) or per column of a 2-D block pair of
    kernel arrays (`pair_arrays`), float64, pairs holding a NaN or inf left out: float32 sums of at
    most CHUNK terms, added in float64."""
    _check_pair(base, tuned)
    if base.ndim != 2:
        raise ValueError(f"line sums need two 2-D blocks, not {base.ndim}-D ones")
    rows, columns = base.shape
    threads = numba.get_num_threads()
    diff_sq, base_sq = np.zeros((threads, rows if by_rows else columns)), np.zeros((threads, rows if by_rows else columns))
    if base.size:
        _line_sums(base.reshape(-1), tuned.reshape(-1), columns, by_rows, diff_sq, base_sq)
    return diff_sq.sum(axis=0), base_sq.sum(axis=0)


def as_kernel_array(bits: np.ndarray, dtype: str, *, float32: bool = False) -> np.ndarray:
    """What the kernel reads, read-only and in the block's shape, from stored bits of `dtype`
    (`Checkpoint.read_bits`): bfloat16 bits as they are (uint16), float32 bits (uint32), any other
    dtype (or bfloat16 too, with `float32`) decoded to float32 first and given as its bits."""
    if (dtype == "bfloat16" and not float32) or dtype == "float32":
        array = np.ascontiguousarray(bits).view()
    else:
        array = np.ascontiguousarray(to_float32(bits, dtype)).view(np.uint32)
    array.flags.writeable = False  # one compiled signature, whether the bits are mapped or copied
    return array


def pair_arrays(base: np.ndarray, base_dtype: str, tuned: np.ndarray, tuned_dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Kernel arrays of a block pair, in one form: a pair stored in different dtypes (a bfloat16 base
    and a float32 tune) is read as float32 on both sides."""
    widen = base_dtype != tuned_dtype
    return as_kernel_array(base, base_dtype, float32=widen), as_kernel_array(tuned, tuned_dtype, float32=widen)


def _check_pair(base: np.ndarray, tuned: np.ndarray) -> None:
    if base.shape != tuned.shape:
        raise ValueError(f"block shapes differ: {base.shape} vs {tuned.shape}")
    if base.dtype != tuned.dtype or base.dtype not in (np.uint16, np.uint32):
        raise ValueError(f"the kernel reads bfloat16 (uint16) or float32 (uint32) bits, both alike, not {base.dtype} "
                         f"and {tuned.dtype}: see pair_arrays")


def accumulate(
    base: np.ndarray,
    tuned: np.ndarray,
    eps: float,
    clip: tuple[float, float],
    sums: np.ndarray,
    hist: np.ndarray,
    tol: float = 1e-3,
) -> None:
    """Add one block pair of kernel arrays (`pair_arrays`) to `sums` (threads x N_SUMS float64) and
    `hist` (threads x bins+2 int64).

    `hist[:, 0]` and `hist[:, -1]` count relative changes below and above the clip range (the last
    also counts the non-finite pairs, `sums[:, NONFINITE]`). A pair counts as moved when
    |W_R - W_B| > tol x |W_B|.
    """
    _check_pair(base, tuned)
    _accumulate(base.reshape(-1), tuned.reshape(-1), float(eps), float(tol), float(clip[0]), float(clip[1]), sums, hist)


def new_buffers(bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed per-thread (sums, hist) buffers for `accumulate`."""
    threads = numba.get_num_threads()
    return np.zeros((threads, N_SUMS)), np.zeros((threads, bins + 2), np.int64)
