"""The numba code of sae/bf16_preacts.py: selections from bfloat16 pre-activations made
exact by recomputing, in float32, every value that the bfloat16 error could put among the
winners (see that module for the bound). Rows are C-contiguous; one thread, no GIL.

The approximations come as the bfloat16 bits (uint16, numba has no bfloat16): the top-k
and BatchTopK's collection compare them as int16 keys (sae/_numba_bf16_bits.py), the gates
widen each row into a float32 buffer while in cache (a bfloat16 is a float32's upper half);
either spares a cast of the whole piece and its float32 copy."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from sae_widgets.sae._numba_bf16_bits import _finite_bits, _key, _key_at_most, _value_of, _widen
from sae_widgets.sae._numba_kernels import (
    RANKED_MAX,
    _cutoff_above,
    _finish_row,
    _groups_reaching,
    _subsets_bound,
    _top_in_order,
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


@njit(nogil=True, cache=True, inline="always")
def _row_slack(slack_in: Any, u_out: Any, t: Any) -> Any:
    """How far below the cut-off t a value's approximation may lie when its float32
    recomputation reaches t: the input part, and the output's rounding (relative u_out)
    of a value near t (a value far above t is above t approximately too: x - u |x| grows
    with x)."""
    return 1.05 * (slack_in + u_out * (abs(t) + 2 * slack_in))


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
def _key_maxima(row16: Any, keys: Any, maxima: Any, group: int) -> bool:
    """keys = the row's `_key`s; maxima[g] = the largest of strided group g; False where
    the row holds a NaN or an infinity. (numba vectorises the keys' loop and np.maximum
    on int16 slices, 32 a register, not a loop taking the maximum element by element.)"""
    n_groups = maxima.shape[0]
    bits = row16.view(np.int16)
    widest = np.int16(0)  # as `_finite_bits`, in the keys' pass (a pass of its own: +25%)
    for j in range(bits.shape[0]):
        keys[j] = _key(bits[j])
        widest = max(widest, np.int16(bits[j] & np.int16(0x7FFF)))
    maxima[:] = keys[:n_groups]
    for q in range(1, group):
        np.maximum(maxima, keys[q * n_groups : (q + 1) * n_groups], maxima)
    return bool(widest < 0x7F80)


KEY_SPAN = 256
"""Widest span of keys (bfloat16 steps, 128 an octave) over which `_key_cutoff` counts the
group maxima in a histogram; wider: `_cutoff_above`'s selection."""


@njit(nogil=True, cache=True)
def _key_cutoff(
    maxima: Any, k: int, bound: Any, chosen: Any, scratch: Any, buf: Any, counts: Any
) -> Any:
    """The k-th largest of a row's group maxima (int16 keys), so k values reach it:
    counted in a histogram of the keys from `_subsets_bound` up, read from the top down;
    where the maxima above that bound span more than KEY_SPAN keys, `_cutoff_above` (as
    `_group_cutoff`). On 1,024 rows of the small
    shape (128 maxima, k=16; numba, one thread, loaded machine): 0.76 against 1.82 ms,
    (/tmp/bf/cut.py, a throwaway); the maxima's span was 62 keys at the median, 122 at
    most (random rows; trained-like rows 71 / 135 on the large shape)."""
    first = _subsets_bound(maxima, k, bound)  # k distinct maxima reach it
    low = np.int32(first)
    span = np.int32(maxima.max()) - low
    if span >= KEY_SPAN:
        return _cutoff_above(maxima, k, first, chosen, scratch, buf)
    counts[: span + 1] = 0
    for g in range(maxima.shape[0]):
        above = np.int32(maxima[g]) - low
        if above >= 0:
            counts[above] += 1
    reached = 0
    while True:  # ends by `low`: k maxima reach it
        reached += counts[span]
        if reached >= k:
            return np.int16(low + span)
        span -= 1


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
    the dense codes to `dense_out`, mode 3 onto its zeros). The scan compares the bits as
    int16 keys (`_key`), never widening the row. The candidates of all rows are recomputed
    together (`_recompute`), but a row's beyond `row_cap` (a wide band: ties, degenerate
    weights) on its own. False on NaN or inf."""
    n_rows, n_units = approx16.shape
    n_groups = n_units // group
    dtype = xa.dtype
    keys = np.empty(n_units, np.int16)
    key_values = np.empty(n_units, np.int16)  # _values_reaching's copy of the keys, unread
    word = np.empty(1, np.uint32)
    maxima = np.empty(n_groups, np.int16)
    bound = np.empty(k, np.int16)
    chosen = np.empty(n_groups, np.int64)
    buf = np.empty(k, np.int16)
    scratch = np.empty(n_groups, np.int16)
    counts = np.empty(KEY_SPAN, np.int32)
    top_scratch = np.empty(max(n_units, RANKED_MAX + 16), dtype)
    ranks = np.empty(RANKED_MAX + 16, np.int32)
    no_row = np.empty(0, dtype)
    cap = n_rows * row_cap + n_units  # a row's scan writes up to n_units past its start
    cand_values = np.empty(cap, dtype)
    cand_units = np.empty(cap, np.int64)
    cand_rows = np.empty(cap, np.int64)
    starts = np.zeros(n_rows + 1, np.int64)
    alone = np.zeros(n_rows, np.bool_)
    n = 0
    for r in range(n_rows):
        row16 = approx16[r]
        if not _key_maxima(row16, keys, maxima, group):
            return False
        t = _value_of(_key_cutoff(maxima, k, bound, chosen, scratch, buf, counts), word)
        cut = _key_at_most(t - 2 * _row_slack(slack_in[r], u_out, t), word)
        n_chosen = _groups_reaching(maxima, cut, chosen)
        found = _values_reaching(keys, cut, chosen, n_chosen, group, key_values, cand_units[n:])
        if found < k:  # only where the bound is not a number (an infinite norm): decline
            return False
        if found > row_cap:  # this row alone, now
            x = xa[r]
            for s in range(n, n + found):
                cand_values[s] = _dot(x, WT[cand_units[s]])
            values, units = out_values[r], out_units[r]
            _top_in_order(
                cand_values[n:], cand_units[n:], found, k, values, units, top_scratch, ranks
            )
            _finish_row(dense_out[r] if mode & 1 else no_row, values, units, k, mode)
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
        _top_in_order(
            cand_values[lo:], cand_units[lo:], hi - lo, k, values, units, top_scratch, ranks
        )
        _finish_row(dense_out[r] if mode & 1 else no_row, values, units, k, mode)
    return True


@njit(nogil=True, cache=True)
def refined_collect_above(
    approx16: Any, slack_in: Any, u_out: Any, xa: Any, WT: Any, cutoff: Any, values: Any,
    flat: Any,
) -> int:  # fmt: skip
    """`collect_above` of the float32 recomputations: their values >= cutoff (row-major,
    with their flat positions) into values/flat up to their size, and how many there are
    (beyond the size: too many; a count past 4x the size is not finished); -1 on NaN or
    inf. Only the values whose approximation reaches cutoff - slack are recomputed, found
    by int16 keys in the groups whose maximum reaches it (as `refined_topk_rows`)."""
    n_rows, n_units = approx16.shape
    group = 16
    while n_units % group:
        group //= 2
    n_groups = n_units // group
    cap = values.shape[0]
    limit = 4 * cap + n_units
    cand_units = np.empty(limit + n_units, np.int64)
    cand_rows = np.empty(limit + n_units, np.int64)
    keys = np.empty(n_units, np.int16)
    key_values = np.empty(n_units, np.int16)  # _values_reaching's copy of the keys, unread
    word = np.empty(1, np.uint32)
    maxima = np.empty(n_groups, np.int16)
    chosen = np.empty(n_groups, np.int64)
    n = 0
    for r in range(n_rows):
        if not _key_maxima(approx16[r], keys, maxima, group):
            return -1
        low = _key_at_most(cutoff - _row_slack(slack_in[r], u_out, cutoff), word)
        n_chosen = _groups_reaching(maxima, low, chosen)
        found = _values_reaching(keys, low, chosen, n_chosen, group, key_values, cand_units[n:])
        cand_rows[n : n + found] = r
        n += found
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
def _grown(a: Any, n: int, size: int) -> Any:
    """A copy of a[:n] in an array of `size`."""
    out = np.empty(size, a.dtype)
    out[:n] = a[:n]
    return out


@njit(nogil=True, cache=True)
def refined_gate_rows(
    approx16: Any, slack_in: Any, u_out: Any, xa: Any, WT: Any, cut: Any, dense: int,
    counts: Any, dense_out: Any,
) -> tuple[bool, Any, Any]:  # fmt: skip
    """Threshold-gated codes (a value kept where its float32 recomputation is above its
    unit's cut-off) from approximate pre-activations (bfloat16 bits): only the values whose
    approximation comes within the slack of their cut-off are recomputed. dense 1: the
    codes written to `dense_out`, 2: onto its zeros (not zeroed again); 0: (ok, values,
    units) of each row's kept entries in unit order, and counts[r] of row r. ok False on
    NaN or inf (nothing written)."""
    n_rows, n_units = approx16.shape
    low = cut - np.abs(cut) * (1.05 * u_out)  # float64: each unit's reach but the row's
    row = np.empty(n_units, xa.dtype)
    row_bits = row.view(np.uint32)
    cap = n_rows * 32 + n_units
    cand_units = np.empty(cap, np.int64)
    cand_rows = np.empty(cap, np.int64)
    n = 0
    for r in range(n_rows):  # one pass, the buffers doubled where full (a counting pass
        # first took as long as this one: 4.4 against 2.3 ms for 1,024 rows, 2,048 units)
        if not _finite_bits(approx16[r].view(np.int16)):
            return False, np.empty(0, xa.dtype), np.empty(0, np.int64)
        if n + n_units > cap:
            cap *= 2
            cand_units = _grown(cand_units, n, cap)
            cand_rows = _grown(cand_rows, n, cap)
        _widen(approx16[r], row_bits)
        reach = 1.05 * slack_in[r] * (1 + 2 * u_out)
        for j in range(n_units):  # a branch: ~1% are candidates (a write each cost 16 B)
            if row[j] >= low[j] - reach:
                cand_units[n] = j
                cand_rows[n] = r
                n += 1
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
        if dense == 1:  # 2: dense_out holds zeros already
            dense_out[:] = 0
        for s in range(kept):
            dense_out[cand_rows[s], cand_units[s]] = exact[s]
    return True, exact[:kept].copy(), cand_units[:kept].copy()
