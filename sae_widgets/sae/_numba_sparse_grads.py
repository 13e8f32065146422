"""The numba code of sae/sparse_grads.py (imported on first use; compiled once, cached).

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
