"""Reading ahead on a background thread: same items, same order, errors where they happened, no thread left."""

import mmap
import resource
import threading

import numpy as np
import pytest

from sfn.io.read_ahead import fault_in, read_ahead


def test_items_come_in_order_each_prepared_before_the_caller_sees_it():
    prepared = []
    for item in read_ahead(range(50), prepared.append, depth=3):
        assert item in prepared
    assert prepared == list(range(50))


def test_an_error_while_reading_ahead_is_raised_at_its_item():
    def items():
        yield from range(5)
        raise OSError("disk gone")

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for item in read_ahead(items(), lambda item: None):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_a_caller_that_stops_early_stops_the_thread():
    produced = []
    blocks = read_ahead(iter(range(10**6)), produced.append, depth=2)
    assert next(blocks) == 0
    blocks.close()
    assert not [t for t in threading.enumerate() if t.name == "sfn-read-ahead"]
    assert len(produced) < 10  # it stopped at the depth it may run ahead, not at the end


def test_fault_in_touches_every_page_of_a_mapping(tmp_path):
    pages = 256
    path = tmp_path / "data"
    path.write_bytes(np.arange(pages * mmap.PAGESIZE, dtype=np.uint8).tobytes())
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = np.frombuffer(mapped, dtype=np.uint16)
    faults = lambda: sum(resource.getrusage(resource.RUSAGE_THREAD)[i] for i in (6, 7))  # noqa: E731 - minor, major
    before = faults()
    fault_in(view)
    # every page of a fresh mapping faults once (the kernel may map a few neighbours per fault)
    assert faults() - before >= pages // 32
    touched = faults()
    fault_in(view)
    assert faults() - touched <= 1  # mapped now: touching again costs nothing
    fault_in(view[:0])
