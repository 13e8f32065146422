"""Where training batches come from: one epoch plan, read from memory or streamed from disk.

The plan of an epoch (which rows, in which order, cut into which batches) depends only on
(n, batch size, shuffle, shuffle buffer, the generator): an array in memory and a store on
disk holding the same rows give the same batches, hence the same model.

Order: with shuffle and `buffer >= n`, one random permutation of all rows (as `fit` always
did). With a smaller buffer, the rows are cut into blocks of `buffer // 32` rows, the blocks
are shuffled, and each window of `buffer` rows (32 blocks) is shuffled within itself: a
shuffle buffer across shards that only ever holds `buffer` rows. Without shuffle, row order.

Sources:
- `TensorBatches`: rows already in a tensor on the training device (gathers each batch).
- `StreamBatches`: rows readable by index from a row source (an `ActivationStore.X`, any
  object with `shape` and `take(indices)`); a background thread reads the next window while
  the current one trains, so reading overlaps compute. Memory: about 3 windows of rows.

Distributed training: each of `world` ranks takes its slice of every global batch and reads
only those rows; `first_batch` is the whole first global batch on every rank, so the
statistics set from it (input scale, b_dec, JumpReLU thresholds) agree without messages.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

BLOCKS_PER_WINDOW = 32


@runtime_checkable
class RowSource(Protocol):
    """Rows on disk (or anywhere) that can be read by index without loading them all."""

    shape: tuple[int, int]

    def take(self, rows: Any) -> np.ndarray: ...

    def chunks(self, size: int, start: int = ..., stop: int | None = ...) -> Iterator[Any]: ...


def is_row_source(X: Any) -> bool:
    """Whether X streams (an `ActivationStore.X`) rather than being an array in memory."""
    return isinstance(X, RowSource) and not isinstance(X, np.ndarray | Tensor)


# Rows that the one-off statistics (input scale, b_dec) are fitted on, at least.
INIT_ROWS = 4096


@dataclass(frozen=True)
class EpochPlan:
    """One pass: the row order and the batch boundaries in it."""

    order: Tensor
    """(n,) int64 row indices in training order."""
    bounds: np.ndarray
    """(n_batches + 1,) start of each batch in `order` (nearly equal batches)."""
    window: int
    """Rows per read window (the shuffle buffer)."""

    @property
    def n_batches(self) -> int:
        return len(self.bounds) - 1

    def first_rows(self, at_least: int) -> Tensor:
        """The first batch's rows, or the first `at_least` rows of the order if the batch is
        smaller: statistics fitted once (input scale, b_dec) need more than a tiny batch."""
        return self.order[: max(int(self.bounds[1]), min(at_least, len(self.order)))]

    def rank_slice(self, b: int, rank: int, world: int) -> tuple[int, int]:
        """Positions in `order` of rank `rank`'s part of batch `b`."""
        lo, hi = int(self.bounds[b]), int(self.bounds[b + 1])
        size = hi - lo
        return lo + size * rank // world, lo + size * (rank + 1) // world


def plan_epoch(
    n: int, batch_size: int, shuffle: bool, buffer: int | None, generator: torch.Generator
) -> EpochPlan:
    """The plan of one epoch (see the module docstring for the order)."""
    window = n if buffer is None else max(1, min(int(buffer), n))
    if not shuffle:
        order = torch.arange(n)
    elif window >= n:
        order = torch.randperm(n, generator=generator)
    else:
        block = max(1, window // BLOCKS_PER_WINDOW)
        n_blocks = math.ceil(n / block)
        blocks = torch.randperm(n_blocks, generator=generator)
        per_window = max(1, window // block)
        parts = []
        for w in range(0, n_blocks, per_window):
            rows = torch.cat(
                [
                    torch.arange(b * block, min(n, (b + 1) * block))
                    for b in blocks[w : w + per_window]
                ]
            )
            parts.append(rows[torch.randperm(rows.numel(), generator=generator)])
        order = torch.cat(parts)
    n_batches = max(1, math.ceil(n / batch_size))
    sizes = np.full(n_batches, n // n_batches, dtype=np.int64)
    sizes[: n % n_batches] += 1  # as torch.tensor_split: the first batches get one more row
    bounds = np.zeros(n_batches + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    return EpochPlan(order, bounds, window)


class TensorBatches:
    """Batches gathered from rows already on the training device."""

    def __init__(self, X_ND: Tensor, rank: int = 0, world: int = 1) -> None:
        self.X_ND, self.rank, self.world = X_ND, rank, world
        self.n = int(X_ND.shape[0])

    def first_batch(self, plan: EpochPlan) -> Tensor:
        return self.X_ND.index_select(0, plan.first_rows(INIT_ROWS).to(self.X_ND.device))

    def batches(self, plan: EpochPlan, scale: float = 1.0) -> Iterator[Tensor]:
        """Each batch's rows times `scale`, a fresh tensor. index_select, then the scale in
        place: 0.62 ms for 4,096 rows of 256 where X[rows] * scale took 3.3 (CPU)."""
        order = plan.order.to(self.X_ND.device)
        for b in range(plan.n_batches):
            lo, hi = plan.rank_slice(b, self.rank, self.world)
            rows = self.X_ND.index_select(0, order[lo:hi])
            yield rows if scale == 1.0 else rows.mul_(scale)


def _lower_priority() -> None:
    """The calling thread yields the CPU to every normal-priority one (Linux: a thread's nice
    value is its own). The read-ahead copies windows while the training step runs on every
    core; at equal priority it took CPU from the step's threads mid-operation, and a
    streamed fit ran at 0.83-0.85 of the in-memory speed (benchmarks/stream_throughput.py).
    At nice 19 it reads in the step's idle moments, or while the step waits for its window."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux, or not allowed: equal priority, as before
        pass


class StreamBatches:
    """Batches read from a row source window by window, the next window read ahead in a
    background thread (numpy's reads release the GIL, so they overlap the training step)."""

    def __init__(
        self, source: Any, device: torch.device, rank: int = 0, world: int = 1, ahead: int = 1
    ) -> None:
        self.source, self.device = source, device
        self.rank, self.world, self.ahead = rank, world, max(1, ahead)
        self.n = int(source.shape[0])

    def _read(self, rows: Tensor, scale: float = 1.0) -> Tensor:
        array = self.source.take(rows.numpy())
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if self.device.type == "cuda":
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        else:
            tensor = tensor.to(self.device)
        # a fresh copy (take gathers): scaled in place, in the read-ahead thread on CPU
        return tensor if scale == 1.0 else tensor.mul_(scale)

    def first_batch(self, plan: EpochPlan) -> Tensor:
        return self._read(plan.first_rows(INIT_ROWS))

    def _windows(
        self, plan: EpochPlan, scale: float
    ) -> Iterator[tuple[list[tuple[int, int]], Tensor]]:
        """(batch slices of this rank inside the window's rows, the rows), window by window:
        a window ends at the first batch boundary at or after each `plan.window` rows."""
        b = 0
        while b < plan.n_batches:
            start = int(plan.bounds[b])
            slices: list[tuple[int, int]] = []
            pieces: list[Tensor] = []
            taken = 0
            while b < plan.n_batches and (not slices or plan.bounds[b] - start < plan.window):
                lo, hi = plan.rank_slice(b, self.rank, self.world)
                slices.append((taken, taken + hi - lo))
                pieces.append(plan.order[lo:hi])
                taken += hi - lo
                b += 1
            yield slices, self._read(torch.cat(pieces), scale)

    def batches(self, plan: EpochPlan, scale: float = 1.0) -> Iterator[Tensor]:
        """Each batch's rows times `scale` (slices of a window read for this call only)."""
        ready: queue.Queue[Any] = queue.Queue(maxsize=self.ahead)
        stop = threading.Event()

        def produce() -> None:
            _lower_priority()
            try:
                for item in self._windows(plan, scale):
                    while not stop.is_set():
                        try:
                            ready.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                ready.put(None)
            except BaseException as err:  # handed to the training thread, raised there
                ready.put(err)

        thread = threading.Thread(target=produce, name="sae-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = ready.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                slices, rows = item
                for lo, hi in slices:
                    yield rows[lo:hi]
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    ready.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)
