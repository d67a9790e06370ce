"""A read-only memory map of one checkpoint file, with page advice by byte range.

Readers return views into this map, so a read costs no copy; `advise(..., MADV_WILLNEED)` asks the
kernel to read ahead, and `MADV_DONTNEED` drops a finished tensor's pages from the process (they stay
in the page cache), which keeps resident memory near one tensor however large the file is.
"""

from __future__ import annotations

import mmap
from pathlib import Path

WILLNEED = mmap.MADV_WILLNEED
DONTNEED = mmap.MADV_DONTNEED


class FileMapping:
    """`path` mapped read-only on first use."""

    def __init__(self, path: Path):
        self.path = path
        self._mm: mmap.mmap | None = None

    @property
    def mm(self) -> mmap.mmap:
        if self._mm is None:
            with open(self.path, "rb") as f:
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._mm

    def advise(self, begin: int, end: int, advice: int) -> None:
        """Give `advice` for bytes [begin, end) (widened to whole pages); no-op before the first read."""
        if self._mm is None and advice != WILLNEED:
            return
        start = begin // mmap.PAGESIZE * mmap.PAGESIZE
        if end > start:
            self.mm.madvise(advice, start, end - start)

    def close(self) -> None:
        # Tensors from `torch.frombuffer` keep a reference to the map object but do not hold its
        # buffer export, so `mmap.close()` would unmap pages they still view. Dropping our reference
        # unmaps the file when the last tensor viewing it is gone.
        self._mm = None
