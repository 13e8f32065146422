"""The numba code of sae/sparse_grads.py and sae/sparse_residual.py (imported on first use;
compiled once, cached).

Entries are ragged and row-major: row b owns entries ends[b]:ends[b + 1], each a unit and a
value. Each kernel runs on one thread without the GIL, over a range of rows or of units, so
that callers split the work between threads with no two writing the same output. Per-unit
sums visit their entries in row order on any split: the same bits on any thread count.
"""

from __future__ import annotations

from typing import Any

from numba import njit


@njit(nogil=True, cache=True, fastmath=True)
def entry_dots(grad: Any, W: Any, units: Any, ends: Any, lo: int, hi: int, out: Any) -> None:
    """out[e] = grad[b] . W[units[e]] for the entries e of rows lo:hi."""
    d = grad.shape[1]
    zero = out[:0].sum()  # 0 in the outputs' dtype: float32 sums stay float32 (vectorised)
    for b in range(lo, hi):
        g = grad[b]
        for e in range(ends[b], ends[b + 1]):
            w = W[units[e]]
            acc = zero
            for j in range(d):
                acc += g[j] * w[j]
            out[e] = acc


@njit(nogil=True, cache=True)
def unit_sums(rows: Any, weights: Any, units: Any, ends: Any, lo: int, hi: int,
              out: Any, out_weights: Any) -> None:  # fmt: skip
    """For units lo:hi: out[u] = sum over the entries e of unit u, in row order, of
    weights[e] * rows[b of e]; out_weights[u] = the sum of those weights (when non-empty).
    One pass over the rows in order (each source row read once, the sums scattered)."""
    d = rows.shape[1]
    out[lo:hi] = 0
    with_weights = out_weights.shape[0] > 0
    if with_weights:
        out_weights[lo:hi] = 0
    for b in range(rows.shape[0]):
        src = rows[b]
        for e in range(ends[b], ends[b + 1]):
            u = units[e]
            if u < lo or u >= hi:
                continue
            wt = weights[e]
            acc = out[u]
            for j in range(d):
                acc[j] += wt * src[j]
            if with_weights:
                out_weights[u] += wt


TILE = 32
"""Rows and columns of a `transpose_into` tile (32 x 32 float32: 4 KiB, in L1)."""


@njit(nogil=True, cache=True)
def transpose_into(src: Any, out: Any, lo: int, hi: int) -> None:
    """out[:, lo:hi] = src[lo:hi].T, a tile at a time: each tile's reads and writes stay in
    a few cache lines and pages (torch's strided copy of 8,192 x 512 float32 took 3.5-4.8
    ms, this 1.5 on 2 threads)."""
    d = src.shape[1]
    for r0 in range(lo, hi, TILE):
        r1 = min(r0 + TILE, hi)
        for c0 in range(0, d, TILE):
            for c in range(c0, min(c0 + TILE, d)):
                for r in range(r0, r1):
                    out[c, r] = src[r, c]


# float sums may be reordered (vectorised); NaN and inf keep their meaning (no nnan / ninf)
_REORDER = {"reassoc", "contract", "nsz", "arcp"}


@njit(nogil=True, cache=True, fastmath=_REORDER)
def residual_sums(x_hat: Any, b_dec: Any, x: Any, block_rows: int, lo: int, hi: int,
                  diff: Any, row_sums: Any, col_sums: Any) -> None:  # fmt: skip
    """For the blocks lo:hi of `block_rows` rows: x_hat += b_dec (in place), diff = x_hat - x,
    row_sums[b] = (sum of diff^2, sum of x^2) and col_sums[block] = (the block's column sums
    of diff, of x), all sums in float64. Blocks fixed by row, not thread: the same bits on
    any split."""
    n, d = x.shape
    for block in range(lo, hi):
        diff_cols, x_cols = col_sums[block, 0], col_sums[block, 1]
        diff_cols[:] = 0.0
        x_cols[:] = 0.0
        for b in range(block * block_rows, min(n, (block + 1) * block_rows)):
            err, squares = 0.0, 0.0
            for j in range(d):
                value = x_hat[b, j] + b_dec[j]
                x_hat[b, j] = value
                t = value - x[b, j]
                diff[b, j] = t
                err += float(t) * float(t)
                squares += float(x[b, j]) * float(x[b, j])
                diff_cols[j] += t
                x_cols[j] += x[b, j]
            row_sums[b, 0] = err
            row_sums[b, 1] = squares
