"""Run small, latency-critical torch calls on one thread.

A 21 x 256 x 2048 encode takes ~0.3 ms on one core, but with several intra-op threads each
call waits for all of them at a barrier: when other processes keep the cores busy, that wait
is a scheduler time slice, 20-40 ms measured on a loaded 2-core machine. Interactive views
(a probe slider, one reconstruction) make many such calls, so they run single-threaded;
large batches keep every thread.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

# Rows below which one thread is as fast as several and immune to barrier stalls.
SMALL_BATCH_ROWS = 512


@contextmanager
def threads_for_batch(n_rows: int) -> Iterator[None]:
    """Limit torch to one intra-op thread while encoding `n_rows` rows, if that is few.

    The setting is process-wide for the duration of the block (a few milliseconds); it is
    restored afterwards even if the block raises.
    """
    torch = sys.modules.get("torch")  # only relevant if torch is in use; never import it here
    if torch is None or n_rows > SMALL_BATCH_ROWS or torch.get_num_threads() == 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
