"""The blocks the Delta pass streams: every block pair of every module pair, in storage order, read
ahead on a background thread (`sfn.io.read_ahead`) while the kernel computes on the one in hand."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sfn.io import Checkpoint
from sfn.io.read_ahead import fault_in, read_ahead
from sfn.registry import ModulePart, iter_part_blocks


@dataclass
class PartPair:
    """A module part of the base and the same part of the tuned model; `row_limit` keeps only the first
    rows (embeddings of different vocabulary sizes)."""

    base: ModulePart
    tuned: ModulePart
    row_limit: int | None = None


def read_pairs(base: Checkpoint, tuned: Checkpoint, pairs: list[PartPair], block_elements: int) -> Iterator[tuple]:
    """(base bits, tuned bits) of every block of every pair in turn, then (None, None) at each pair's
    end (read them with `this_pair`), each block's pages faulted in ahead of the caller. No `prefetch`:
    on top of the read-ahead thread, asking for the next tensor with MADV_WILLNEED made the cold pass
    slower (4.4-4.8 s against 3.3-3.4 s on the 1.5B pair of `benchmarks/bench_delta.py`)."""
    return read_ahead(_blocks(base, tuned, pairs, block_elements), _fault_in_pair)


def this_pair(blocks: Iterator[tuple]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The blocks of the pair in hand, up to its end marker."""
    for base_bits, tuned_bits in blocks:
        if base_bits is None:
            return
        yield base_bits, tuned_bits


def _blocks(base: Checkpoint, tuned: Checkpoint, pairs: list[PartPair], block_elements: int) -> Iterator[tuple]:
    for pair in pairs:
        yield from zip(
            iter_part_blocks(base, pair.base, block_elements, pair.row_limit),
            iter_part_blocks(tuned, pair.tuned, block_elements, pair.row_limit),
        )
        yield None, None


def _fault_in_pair(blocks: tuple) -> None:
    for block in blocks:
        if block is not None:
            fault_in(block)
