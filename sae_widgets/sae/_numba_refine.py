"""The numba code of sae/bf16_preacts.py: selections from bfloat16 pre-activations made
exact by recomputing, in float32, every value that the bfloat16 error could put among the
winners (see that module for the bound). Rows are C-contiguous; one thread, no GIL.

The approximations come as the bfloat16 bits (uint16, numba has no bfloat16): each row is
widened into a float32 buffer while in cache (a bfloat16 is a float32's upper half), which
spares a cast of the whole piece and its float32 copy."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from sae_widgets.sae._numba_kernels import (
    _finish_row,
    _group_cutoff,
    _group_maxima,
    _groups_reaching,
    _kth_largest,
    _values_reaching,
)


@njit(nogil=True, cache=True, fastmath=True)
def _dot(a: Any, b: Any) -> Any:
    """a . b in float32, vectorised (fastmath: the order is the compiled loop's, the same
    for a row on any thread and in any piece)."""
    total = np.float32(0.0)
    for i in range(a.shape[0]):
        total += a[i] * b[i]
    return total


@njit(nogil=True, cache=True)
def transpose_into(a: Any, out: Any) -> None:
    """out = a.T, in 32 x 32 blocks (each read and written while in cache): 7.6 ms for a
    520 x 8,192 float32 matrix against 13.3 for torch's .t().contiguous() here."""
    n, m = a.shape
    for i0 in range(0, n, 32):
        for j0 in range(0, m, 32):
            for i in range(i0, min(i0 + 32, n)):
                for j in range(j0, min(j0 + 32, m)):
                    out[j, i] = a[i, j]


@njit(nogil=True, cache=True)
def narrow_rows(xa: Any, xa_bits: Any, out16: Any, norms: Any) -> None:
    """out16 = the bfloat16 bits of the float32 rows xa (xa_bits: their bits), rounded to
    nearest even (a NaN kept a NaN); norms = the rows' Euclidean norms, summed in float64.
    One pass on the lane's thread instead of torch's cast and norm."""
    n_rows, width = xa.shape
    exponent, mantissa = np.uint32(0x7F800000), np.uint32(0x7FFFFF)
    for r in range(n_rows):
        total = 0.0
        for i in range(width):
            value = np.float64(xa[r, i])
            total += value * value
            b = xa_bits[r, i]
            high = b >> np.uint32(16)
            if (b & exponent) == exponent and (b & mantissa) != 0:
                out16[r, i] = np.uint16(high | np.uint32(0x40))  # NaN: a quiet NaN
            else:
                out16[r, i] = np.uint16(
                    (b + np.uint32(0x7FFF) + (high & np.uint32(1))) >> np.uint32(16)
                )
        norms[r] = np.sqrt(total)


@njit(nogil=True, cache=True, inline="always")
def _widen(row16: Any, bits32: Any) -> None:
    """bits32 = the float32 bits of the bfloat16 bits row16."""
    for j in range(row16.shape[0]):
        bits32[j] = np.uint32(row16[j]) << np.uint32(16)


@njit(nogil=True, cache=True, inline="always")
def _row_slack(slack_in: Any, u_out: Any, t: Any) -> Any:
    """How far below the cut-off t a value's approximation may lie when its float32
    recomputation reaches t: the input part, and the output's rounding (relative u_out)
    of a value near t (a value far above t is above t approximately too: x - u |x| grows
    with x)."""
    return 1.05 * (slack_in + u_out * (abs(t) + 2 * slack_in))


@njit(nogil=True, cache=True)
def _top_in_order(
    cand_values: Any, cand_units: Any, n: int, k: int, values: Any, units: Any, scratch: Any
) -> None:
    """values/units = the k largest of n >= k candidates given in increasing unit order,
    kept in that order; of values tied at the k-th, the lowest units win. The k-th largest
    by quickselect on a copy, then one pass (the refined rows have ~2-4 k candidates: a
    k-slot buffer's replacements cost k each)."""
    scratch[:n] = cand_values[:n]
    t = _kth_largest(scratch, n, k)
    above = 0
    for s in range(n):
        above += cand_values[s] > t
    ties = k - above  # of the values equal to t, the first (lowest units) this many
    at = 0
    for s in range(n):
        v = cand_values[s]
        if v > t or (v == t and ties > 0):
            ties -= v == t
            values[at] = v
            units[at] = cand_units[s]
            at += 1


@njit(nogil=True, cache=True)
def _recompute(xa: Any, WT: Any, rows: Any, units: Any, n: int, values: Any) -> None:
    """values[s] = xa[rows[s]] . WT[units[s]] for s < n, unit by unit: each of WT's rows
    is read once, in order (a gather per candidate waited on memory: 100-200 ns a dot)."""
    n_units = WT.shape[0]
    starts = np.zeros(n_units + 1, np.int64)
    for s in range(n):
        starts[units[s] + 1] += 1
    for u in range(n_units):
        starts[u + 1] += starts[u]
    fill = starts[:-1].copy()
    order = np.empty(n, np.int64)
    for s in range(n):
        order[fill[units[s]]] = s
        fill[units[s]] += 1
    for u in range(n_units):
        if starts[u] == starts[u + 1]:
            continue
        w = WT[u]
        for p in range(starts[u], starts[u + 1]):
            s = order[p]
            values[s] = _dot(xa[rows[s]], w)


@njit(nogil=True, cache=True)
def refined_topk_rows(
    approx16: Any, slack_in: Any, u_out: Any, xa: Any, WT: Any, k: int, group: int,
    mode: int, row_cap: int, out_values: Any, out_units: Any, dense_out: Any,
) -> bool:  # fmt: skip
    """Per row of `approx16` (bfloat16 bits of ~ xa @ WT.T, each value within the row's
    slack of its float32 recomputation): t, the k-th largest group maximum (so k
    approximate values >= t); every value >= t - 2 * slack recomputed as xa[r] . WT[unit]
    (the k exact winners are among them); the exact top k of those, as `topk_rows_kernel`
    gives them (sorted by unit, ties to the lowest units; modes likewise, mode 1 writing
    the dense codes to `dense_out`). The candidates of all rows are recomputed together
    (`_recompute`), but a row's beyond `row_cap` (a wide band: ties, degenerate weights) on
    its own. False on NaN."""
    n_rows, n_units = approx16.shape
    n_groups = n_units // group
    dtype = xa.dtype
    row = np.empty(n_units, dtype)
    row_bits = row.view(np.uint32)
    maxima = np.empty(n_groups, dtype)
    bound = np.empty(k, dtype)
    chosen = np.empty(n_groups, np.int64)
    buf = np.empty(k, dtype)
    scratch = np.empty(n_groups, dtype)
    top_scratch = np.empty(n_units, dtype)
    cap = n_rows * row_cap + n_units  # a row's scan writes up to n_units past its start
    cand_values = np.empty(cap, dtype)
    cand_units = np.empty(cap, np.int64)
    cand_rows = np.empty(cap, np.int64)
    starts = np.zeros(n_rows + 1, np.int64)
    alone = np.zeros(n_rows, np.bool_)
    n = 0
    for r in range(n_rows):
        _widen(approx16[r], row_bits)
        if not _group_maxima(row, maxima, group):
            return False
        top = maxima.max()
        if top - top != 0:  # an infinite approximation: its bound says nothing
            return False
        t = _group_cutoff(maxima, k, bound, chosen, scratch, buf)
        cut = t - 2 * _row_slack(slack_in[r], u_out, t)
        n_chosen = _groups_reaching(maxima, cut, chosen)
        found = _values_reaching(row, cut, chosen, n_chosen, group, cand_values[n:], cand_units[n:])
        if found < k:  # only where the bound is not a number (an infinite norm): decline
            return False
        if found > row_cap:  # this row alone, now
            x = xa[r]
            for s in range(n, n + found):
                cand_values[s] = _dot(x, WT[cand_units[s]])
            values, units = out_values[r], out_units[r]
            _top_in_order(cand_values[n:], cand_units[n:], found, k, values, units, top_scratch)
            _finish_row(dense_out[r] if mode == 1 else row, values, units, k, mode)
            alone[r] = True
        else:
            cand_rows[n : n + found] = r
            n += found
        starts[r + 1] = n
    _recompute(xa, WT, cand_rows, cand_units, n, cand_values)
    for r in range(n_rows):
        if alone[r]:
            continue
        lo, hi = starts[r], starts[r + 1]
        values, units = out_values[r], out_units[r]
        _top_in_order(cand_values[lo:], cand_units[lo:], hi - lo, k, values, units, top_scratch)
        _finish_row(dense_out[r] if mode == 1 else row, values, units, k, mode)
    return True


@njit(nogil=True, cache=True)
def refined_collect_above(
    approx16: Any, slack_in: Any, u_out: Any, xa: Any, WT: Any, cutoff: Any, values: Any,
    flat: Any,
) -> int:  # fmt: skip
    """`collect_above` of the float32 recomputations: their values >= cutoff (row-major,
    with their flat positions) into values/flat up to their size, and how many there are
    (beyond the size: too many; a count past 4x the size is not finished); -1 on NaN or
    inf. Only the values whose approximation reaches cutoff - slack are recomputed."""
    n_rows, n_units = approx16.shape
    cap = values.shape[0]
    limit = 4 * cap + n_units
    cand_units = np.empty(limit + n_units, np.int64)
    cand_rows = np.empty(limit + n_units, np.int64)
    row = np.empty(n_units, xa.dtype)
    row_bits = row.view(np.uint32)
    n = 0
    for r in range(n_rows):
        _widen(approx16[r], row_bits)
        low = cutoff - _row_slack(slack_in[r], u_out, cutoff)
        bad = 0
        for j in range(n_units):
            v = row[j]
            bad += (v - v) != 0  # NaN or infinite
            cand_units[n] = j
            cand_rows[n] = r
            n += v >= low
        if bad:
            return -1
        if n > limit:
            return n  # more than cap values reach the cut-off: the caller declines
    exact = np.empty(n, xa.dtype)
    _recompute(xa, WT, cand_rows, cand_units, n, exact)
    count = 0
    for s in range(n):  # row-major, as the candidates were found
        if exact[s] >= cutoff:
            if count < cap:
                values[count] = exact[s]
                flat[count] = cand_rows[s] * n_units + cand_units[s]
            count += 1
    return count


@njit(nogil=True, cache=True)
def refined_gate_rows(
    approx16: Any, slack_in: Any, u_out: Any, xa: Any, WT: Any, cut: Any, dense: bool,
    counts: Any, dense_out: Any,
) -> tuple[bool, Any, Any]:  # fmt: skip
    """Threshold-gated codes (a value kept where its float32 recomputation is above its
    unit's cut-off) from approximate pre-activations (bfloat16 bits): only the values whose
    approximation comes within the slack of their cut-off are recomputed. dense: the codes
    written to `dense_out`; else (ok, values, units) of each row's kept entries in unit
    order, and counts[r] of row r. ok False on NaN or inf (nothing written)."""
    n_rows, n_units = approx16.shape
    spread = np.abs(cut) * (1.05 * u_out)
    row = np.empty(n_units, xa.dtype)
    row_bits = row.view(np.uint32)
    n = 0
    for r in range(n_rows):  # count first: the buffers then hold exactly the candidates
        _widen(approx16[r], row_bits)
        reach = 1.05 * slack_in[r] * (1 + 2 * u_out)
        bad = 0
        for j in range(n_units):
            v = row[j]
            bad += (v - v) != 0  # NaN or infinite
            n += v >= cut[j] - reach - spread[j]
        if bad:
            return False, np.empty(0, xa.dtype), np.empty(0, np.int64)
    cand_units = np.empty(n + n_units, np.int64)
    cand_rows = np.empty(n + n_units, np.int64)
    n = 0
    for r in range(n_rows):
        _widen(approx16[r], row_bits)
        reach = 1.05 * slack_in[r] * (1 + 2 * u_out)
        for j in range(n_units):
            cand_units[n] = j
            cand_rows[n] = r
            n += row[j] >= cut[j] - reach - spread[j]
    exact = np.empty(n, xa.dtype)
    _recompute(xa, WT, cand_rows, cand_units, n, exact)
    counts[:] = 0
    kept = 0
    for s in range(n):
        if exact[s] > cut[cand_units[s]]:
            counts[cand_rows[s]] += 1
            exact[kept] = exact[s]
            cand_units[kept] = cand_units[s]
            cand_rows[kept] = cand_rows[s]
            kept += 1
    if dense:
        dense_out[:] = 0
        for s in range(kept):
            dense_out[cand_rows[s], cand_units[s]] = exact[s]
    return True, exact[:kept].copy(), cand_units[:kept].copy()
