"""Lanes: a batch's rows cut into pieces that the threads of sparse_kernels.pool() take in
turn, each piece multiplied (sae/cpu_gemm.py) and then selected on its thread while its
pre-activations are still in cache.

One matmul of the whole batch on all threads followed by a selection on all threads reads
the pre-activations back from memory (32 MiB and more), and hands the cores from one
thread pool to the other twice per step. A lane does both on one thread, one piece at a
time. Measured on the 2-core project machine (4,096 x 264 @ 264 x 2,048 and the per-row
top-16, `benchmarks/train_throughput.py` prints the step's figures): the whole-batch MKL
matmul and top-k took 58 ms, two lanes of 512-row pieces with OpenBLAS on one thread each
43.5 ms (256-row pieces 44.5 ms, 64-row 51 ms).

Lanes take the next piece when done with one, so a lane that the OS delays (a shared
machine) does not hold up the others. Pieces are fixed by row, not by lane: every row's
products and selection are the same bits on any number of threads. (Not on any cut into
pieces: numpy's OpenBLAS rounds a row by its position in the call, so encoding, whose
pieces follow the caller's chunks, multiplies with torch's BLAS; sae/encoding.py.)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TypeVar, cast

import torch
from torch import Tensor
from torch.profiler import record_function

from sae_widgets.sae import cpu_gemm, sparse_kernels

_T = TypeVar("_T")

PIECE_ROWS = 512
"""Rows of a training step's piece (its 4 MiB of pre-activations at 2,048 units). Against
256-row pieces, in one process (`benchmarks/train_throughput.py --piece-rows-ab 256`, the
2-core Intel Xeon machine): 146,087 against 138,543 samples/s on the small TopK shape,
26,892 against 26,007 on the large one, the same weights (torch's BLAS chosen there)."""


@contextmanager
def one_thread_each() -> Iterator[None]:
    """torch's intra-op threads and numpy's BLAS at one thread while the lanes run (each
    lane is a thread; a BLAS's own pool would compete with them)."""
    before = torch.get_num_threads()
    blas = cpu_gemm.numpy_blas()
    torch.set_num_threads(1)
    try:
        with blas.limit(limits=1) if blas is not None else nullcontext():
            yield
    finally:
        torch.set_num_threads(before)


def count(n_pieces: int, threads: int | None = None) -> int:
    """Lanes for `n_pieces`: one per thread (torch's count, or `threads`), at most one per
    core and one per piece."""
    wanted = torch.get_num_threads() if threads is None else threads
    return max(1, min(wanted, sparse_kernels.pool()[1], n_pieces))


def run(n_pieces: int, n_lanes: int, work: Callable[[int, int], _T | None]) -> list[_T] | None:
    """work(lane, piece) over every piece, the lanes each on one thread; the results in
    piece order, or None as soon as a piece's was None (the rest are then not run)."""
    results: list[_T | None] = [None] * n_pieces
    claim = itertools.count()  # next() on it is atomic: each piece goes to one lane

    def run_lane(lane: int) -> bool:
        while (i := next(claim)) < n_pieces:
            results[i] = work(lane, i)
            if results[i] is None:
                return False
        return True

    with one_thread_each():
        if n_lanes == 1:
            ok = run_lane(0)
        else:
            ok = all(list(sparse_kernels.pool()[0].map(run_lane, range(n_lanes))))
    return cast(list[_T], results) if ok else None


CALIBRATION_FLOP = 5e8
"""Work of one lane's timed matmul when `blas_for` times the BLASes (fewer rows if larger)."""
REPEATS = 3
"""Timed lanes per BLAS in `blas_for` (their best counts), after one untimed each."""


def blas_for(b: Tensor, n_lanes: int) -> str:
    """The BLAS (sae/cpu_gemm.py) of (rows x b.shape[0]) @ b in `n_lanes` lanes: forced,
    chosen before, or timed now, as the lanes run it (each lane on one thread, all at once,
    so that the BLASes share the caches and memory as they will), on inputs of its own."""
    width, n_units = b.shape
    key = (width, n_units, b.dtype, n_lanes)
    blas = cpu_gemm.known(key)
    if blas is not None:
        return blas
    names = cpu_gemm.candidates(b.dtype)
    if len(names) == 1:
        return cpu_gemm.choose(key, {names[0]: 0.0})
    rows = int(max(16, min(2 * PIECE_ROWS, CALIBRATION_FLOP // (2 * width * n_units))))
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n_lanes * rows, width, generator=generator, dtype=b.dtype)
    out = a.new_empty(n_lanes * rows, n_units)
    b = b.detach()
    best = dict.fromkeys(names, float("inf"))
    for repeat in range(1 + REPEATS):
        for blas in names:  # interleaved: a change of load hits both

            def part(_: int, i: int, blas: str = blas) -> bool:
                rows_i = slice(i * rows, (i + 1) * rows)
                cpu_gemm.matmul_into(a[rows_i], b, out[rows_i], blas)
                return True

            start = time.perf_counter()
            run(n_lanes, n_lanes, part)
            if repeat:  # the first: the BLAS's own buffers faulted in
                best[blas] = min(best[blas], time.perf_counter() - start)
    return cpu_gemm.choose(key, best)


def multiply(a: Tensor, b: Tensor, out: Tensor, threads: int | None = None) -> None:
    """out = a @ b in pieces of `PIECE_ROWS` rows, one lane per thread."""
    _pieces(a, b, lambda _, rows: out[rows], None, threads)


def multiply_in_scratch(
    a: Tensor, b: Tensor, scratch: list[Tensor], then: Callable[[slice, Tensor], _T | None]
) -> list[_T] | None:
    """a @ b in pieces of `PIECE_ROWS` rows, each written to its lane's `scratch` (one per
    lane, cache-sized) and handed to `then(rows, product)` on the same thread while in
    cache (`then` copies what it keeps); the results of `then` in row order, or None where
    it declined a piece (the rest are then not run)."""
    results = _pieces(
        a, b, lambda lane, rows: scratch[lane][: rows.stop - rows.start], then, len(scratch)
    )
    return cast(list[_T], results)  # a None from `then` made it None as a whole


def _pieces(
    a: Tensor,
    b: Tensor,
    out_for: Callable[[int, slice], Tensor],
    then: Callable[[slice, Tensor], _T | None] | None,
    threads: int | None,
) -> list[_T | None] | None:
    """Each piece of a's rows multiplied into out_for(lane, rows), then `then` on it."""
    n_rows = a.shape[0]
    pieces = [slice(lo, min(n_rows, lo + PIECE_ROWS)) for lo in range(0, n_rows, PIECE_ROWS)]
    n_lanes = count(len(pieces), threads)
    blas = blas_for(b, n_lanes)

    def work(lane: int, i: int) -> tuple[_T | None] | None:
        rows = pieces[i]
        product = out_for(lane, rows)
        cpu_gemm.matmul_into(a[rows], b, product, blas)
        if then is None:
            return (None,)
        found = then(rows, product)
        return None if found is None else (found,)

    with record_function("sae::lanes"):  # named in torch.profiler breakdowns
        results = run(len(pieces), n_lanes, work)
    return None if results is None else [r[0] for r in results]
