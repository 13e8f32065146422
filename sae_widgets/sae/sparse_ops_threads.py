"""Threads of a sparse training step on CPU, chosen from measured step times.

A sparse step (TopK, BatchTopK, Matryoshka) is one large matmul and some fifty small
operations (top-k, gathers, embedding bags, the loss, Adam). Each operation torch runs on
several threads ends on a barrier that waits for its slowest thread. On a machine whose
cores are busy with other work, the slowest thread is one the scheduler has not run yet:
measured on the shared 2-core project machine (load ~9, benchmarks/train_throughput.py),
a step took 3x longer on 2 threads than with its small operations on 1 thread and the matmul
on 2. On an idle machine the threads help. So `StepThreads` times the steps of both modes
and uses the faster, trying the other mode again every `RETRY` steps (the load changes).
The first step, a warm-up, runs in parallel and is not timed.

Results do not depend on the mode: the step's operations give the same bits on 1 or 2
threads (checked by tests/test_sparse_ops.py), so the choice changes speed only. Other
devices, and a process limited to one thread, keep torch's setting.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import torch

RETRY = 24
"""Steps between two tries of the mode that measured slower."""
WINDOW = 5
"""Recent steps per mode whose median decides."""
FIRST_ORDER = ("parallel", "serial", "serial", "parallel")
"""The modes of the first timed steps: each mode as early on average."""

_gemm_threads: int | None = None  # while a serial step runs: the matmul's thread count


@contextmanager
def matmul_threads() -> Iterator[None]:
    """Around the step's large matmul: torch's full thread count back, if a serial step
    lowered it (otherwise nothing changes)."""
    if _gemm_threads is None:
        yield
        return
    torch.set_num_threads(_gemm_threads)
    try:
        yield
    finally:
        torch.set_num_threads(1)


@contextmanager
def serial_small_ops() -> Iterator[None]:
    """Run the block with one thread, except inside `matmul_threads`."""
    global _gemm_threads
    full = torch.get_num_threads()
    if full <= 1 or _gemm_threads is not None:
        yield
        return
    _gemm_threads = full
    torch.set_num_threads(1)
    try:
        yield
    finally:
        _gemm_threads = None
        torch.set_num_threads(full)


class StepThreads:
    """Chooses, step by step, between torch's threads everywhere ("parallel") and the small
    operations on one thread ("serial"), from the median time of recent steps of each."""

    def __init__(self, device: torch.device, sparse: bool) -> None:
        self.enabled = sparse and device.type == "cpu"
        self.times: dict[str, deque[float]] = {
            "parallel": deque(maxlen=WINDOW),
            "serial": deque(maxlen=WINDOW),
        }
        self.steps = 0
        self.counts = {"parallel": 0, "serial": 0}
        """Steps run in each mode."""

    def choose(self) -> str:
        """The mode of the next step: while either has fewer than 2 timed steps, the one
        with fewer, the first four in the order parallel, serial, serial, parallel (early
        steps run slower than later ones: taken in turns, parallel's came first each time,
        and one benchmark run kept 20 of 24 steps serial at 0.40 of the roofline where
        parallel throughout made 0.44); then the faster by median, but every RETRY steps
        the slower one, its old times dropped so that two fresh steps decide (a load that
        passed no longer counts against it)."""
        parallel, serial = (len(self.times[mode]) for mode in ("parallel", "serial"))
        if max(parallel, serial) < 2:
            return FIRST_ORDER[parallel + serial]
        if min(parallel, serial) < 2:
            return "parallel" if parallel < serial else "serial"
        best, other = sorted(self.times, key=lambda mode: statistics.median(self.times[mode]))
        if self.steps % RETRY == 0:
            self.times[other].clear()
            return other
        return best

    @contextmanager
    def step(self) -> Iterator[None]:
        """Run one training step in the chosen mode and time it."""
        if not self.enabled or torch.get_num_threads() <= 1:
            yield
            return
        if self.steps == 0:
            # The first step also loads the compiled kernels and faults its buffers in: timed,
            # it made "parallel" look slow and kept 6 of 8 steps on one thread (benchmarks/
            # train_throughput.py, large shape: 0.56 of the roofline against 0.69 for
            # parallel throughout, on a quiet machine).
            self.steps += 1
            self.counts["parallel"] += 1
            yield
            return
        mode = self.choose()
        self.steps += 1
        start = time.perf_counter()
        if mode == "serial":
            with serial_small_ops():
                yield
        else:
            yield
        self.times[mode].append(time.perf_counter() - start)
        self.counts[mode] += 1
