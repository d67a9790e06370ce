"""The maps run hundreds of passes of a 32-wide model: with one intra-op thread they take a tenth of
the time on a busy 2-core machine (two threads spin against each other on such small matrices)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
