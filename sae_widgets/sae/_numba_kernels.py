"""The numba code of sae/sparse_kernels.py (imported on first use; compiled once, cached).

Each kernel runs on one thread without the GIL. Rows are C-contiguous float32 or float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

KEPT_K = 16
"""Largest k whose cut-off is ranked with a k-slot buffer; above it, by quickselect. On 512
rows (trained-like scales, numba, one thread, this machine), buffer against quickselect:
2,048 units k=16 1.02 against 1.11 ms; 8,192 k=32 3.80 against 2.86; 4,096 k=64 7.2-10.8
against 4.9-6.7 (the buffer's cost grows as k squared)."""


@njit(nogil=True, cache=True, inline="always")
def _smallest(buf: Any, n: int) -> tuple[Any, int]:
    """(value, position) of the smallest of buf[:n]."""
    low, at = buf[0], 0
    for j in range(1, n):
        if buf[j] < low:
            low, at = buf[j], j
    return low, at


@njit(nogil=True, cache=True)
def _kth_largest_kept(values: Any, k: int, buf: Any) -> Any:
    """The k-th largest of `values` (a k-slot buffer of the largest so far)."""
    for j in range(k):
        buf[j] = values[j]
    low, at = _smallest(buf, k)
    for g in range(k, values.shape[0]):
        if values[g] > low:
            buf[at] = values[g]
            low, at = _smallest(buf, k)
    return low


@njit(nogil=True, cache=True)
def _kth_largest(a: Any, n: int, k: int) -> Any:
    """The k-th largest of a[:n] (no NaN), by quickselect; a[:n] is reordered. On the ~113
    group maxima of a large shape's row (k=32): 0.58 us against 2.37 for a k-slot buffer
    of the largest so far (numba, one thread, this machine)."""
    lo, hi, target = 0, n - 1, k - 1
    while lo < hi:
        pivot = a[(lo + hi) >> 1]
        i, j = lo, hi
        while i <= j:  # Hoare's partition, descending: a[lo:i] >= pivot >= a[j + 1:hi + 1]
            while a[i] > pivot:
                i += 1
            while a[j] < pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:  # a[j + 1:i] all equal the pivot
            break
    return a[target]


@njit(nogil=True, cache=True)
def _group_maxima(row: Any, maxima: Any, group: int) -> bool:
    """maxima[g] = the largest of the row's strided group g; False where one is NaN."""
    n_groups = maxima.shape[0]
    maxima[:] = row[:n_groups]
    for q in range(1, group):
        np.maximum(maxima, row[q * n_groups : (q + 1) * n_groups], maxima)  # keeps NaN
    bad = 0
    for g in range(n_groups):
        bad |= maxima[g] != maxima[g]
    return not bad


@njit(nogil=True, cache=True, inline="always")
def _subsets_bound(maxima: Any, k: int, bound: Any) -> Any:
    """The smallest maximum of k disjoint subsets of the group maxima (k distinct maxima
    reach it): a lower bound on the k-th largest from the row itself (a running guess from
    the rows before failed on 97% of a trained SAE's rows, whose scales differ)."""
    subsets = maxima.shape[0] // k  # >= 1: k <= n_units, and n_groups >= 4 k when group > 1
    bound[:] = maxima[:k]
    for s in range(1, subsets):
        np.maximum(bound, maxima[s * k : (s + 1) * k], bound)
    return bound.min()


@njit(nogil=True, cache=True)
def _group_cutoff(maxima: Any, k: int, bound: Any, chosen: Any, scratch: Any, buf: Any) -> Any:
    """t, the k-th largest group maximum (so the row's k-th largest value is >= t), found
    among the few maxima that reach `_subsets_bound`."""
    return _cutoff_above(maxima, k, _subsets_bound(maxima, k, bound), chosen, scratch, buf)


@njit(nogil=True, cache=True)
def _cutoff_above(maxima: Any, k: int, t: Any, chosen: Any, scratch: Any, buf: Any) -> Any:
    """The k-th largest of the maxima reaching t (t itself where at most 2 k do)."""
    n_chosen = _groups_reaching(maxima, t, chosen)
    if n_chosen > 2 * k:  # ~2.7 k of them (trained and random rows): the exact cut-off
        for s in range(n_chosen):
            scratch[s] = maxima[chosen[s]]
        if k > KEPT_K:
            t = _kth_largest(scratch, n_chosen, k)
        else:
            t = _kth_largest_kept(scratch[:n_chosen], k, buf)
    return t


@njit(nogil=True, cache=True, inline="always")
def _groups_reaching(maxima: Any, t: Any, chosen: Any) -> int:
    """chosen[:n] = the groups whose maximum is >= t, in order; returns n."""
    n_chosen = 0
    for g in range(maxima.shape[0]):
        chosen[n_chosen] = g
        n_chosen += maxima[g] >= t
    return n_chosen


@njit(nogil=True, cache=True)
def _values_reaching(
    row: Any, t: Any, chosen: Any, n_chosen: int, group: int, values: Any, units: Any
) -> int:
    """The row's values >= t in the chosen groups, into values/units in increasing unit
    order (read slice by slice through the list of those groups: measured 12-25% faster
    than a strided walk along each group); returns how many."""
    n_groups = row.shape[0] // group
    n = 0
    for q in range(group):
        base = q * n_groups
        for s in range(n_chosen):
            j = base + chosen[s]
            v = row[j]
            values[n] = v
            units[n] = j
            n += v >= t
    return n


@njit(nogil=True, cache=True, inline="always")
def _finish_row(row: Any, values: Any, units: Any, k: int, mode: int) -> None:
    """mode 1: the row becomes its dense ReLU'd codes; 3: the row (zeros) gets them, not
    zeroed again; 2: outputs ReLU'd, unit -1 where <= 0; 0: nothing."""
    if mode == 1 or mode == 3:
        if mode == 1:
            row[:] = 0
        for j in range(k):
            if values[j] > 0:
                row[units[j]] = values[j]
    elif mode == 2:
        for j in range(k):
            if not values[j] > 0:
                values[j] = 0
                units[j] = -1


RANKED_MAX = 96
"""Most candidates whose top k `_top_in_order` finds by their ranks (n^2 / 16 vector
steps); more by quickselect. On 1,024 rows of 17-44 candidates (k=16, numba, one thread,
this machine): 0.47-0.59 against 0.95-1.73 ms; 33-99 (k=32) 1.24 against 1.62; about even
from 80-140 (/tmp/bf/rank.py, a throwaway). The float32 top-k's few candidates (~k + 3)
too, in place of dropping the weakest one by one: 1,024 rows at 512 units k=8 1.63 ->
1.34 ms, 2,048 k=16 and 8,192 k=32 even (0.97-1.09x, /tmp/bf/ab_f32.py)."""


@njit(nogil=True, cache=True, fastmath=True)
def _stable_ranks(a: Any, n: int, rank: Any) -> None:
    """rank[i] = the place of a[i] among a[:n] in decreasing order, ties by position (so
    the ranks of a[:n] are 0..n-1); a[n:] padded with -inf to the next 16, unranked. One
    vectorised pass over the padded array per value (no branches)."""
    padded = (n + 15) & ~15
    rank[:padded] = 0
    for j in range(n):
        v = a[j]
        for i in range(padded):
            rank[i] += (v > a[i]) | ((v == a[i]) & (j < i))


@njit(nogil=True, cache=True)
def _top_in_order(
    cand_values: Any, cand_units: Any, n: int, k: int, values: Any, units: Any, scratch: Any,
    rank: Any,
) -> None:  # fmt: skip
    """values/units = the k largest of n >= k candidates given in increasing unit order,
    kept in that order; of values tied at the k-th, the lowest units win. Up to
    `RANKED_MAX` candidates: those whose stable rank is below k (scratch and rank hold
    RANKED_MAX + 16); more: the k-th largest by quickselect on a copy, then one pass."""
    if n <= RANKED_MAX:
        padded = (n + 15) & ~15
        scratch[:n] = cand_values[:n]
        scratch[n:padded] = -np.inf
        _stable_ranks(scratch, n, rank)
        at = 0
        for s in range(n):  # no branch on the data: written, kept if ranked
            values[at] = cand_values[s]
            units[at] = cand_units[s]
            at += rank[s] < k
            if at == k:  # (a NaN ranks first: never more than k)
                break
        return
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
def topk_rows_kernel(
    pre: Any, k: int, group: int, mode: int, out_values: Any, out_units: Any
) -> bool:
    """Per row: the maxima of strided groups, a cut-off t with at least k group maxima
    >= t (`_group_cutoff`), then the exact top k of the values >= t in those groups.
    Outputs are sorted by unit; of values tied at the k-th, the lowest units win. mode 0:
    select; 1: the row becomes its dense ReLU'd TopK codes; 2: outputs ReLU'd, unit -1
    where <= 0. False where a row holds NaN (torch handles those)."""
    n_rows, n_units = pre.shape
    n_groups = n_units // group  # the caller makes n_units a multiple of group
    maxima = np.empty(n_groups, pre.dtype)
    bound = np.empty(k, pre.dtype)
    chosen = np.empty(n_groups, np.int64)
    buf = np.empty(k, pre.dtype)
    cand_values = np.empty(n_units, pre.dtype)
    scratch = np.empty(max(n_units, RANKED_MAX + 16), pre.dtype)
    ranks = np.empty(RANKED_MAX + 16, np.int32)
    cand_units = np.empty(n_units, np.int64)
    for r in range(n_rows):
        row = pre[r]
        if not _group_maxima(row, maxima, group):
            return False
        t = _group_cutoff(maxima, k, bound, chosen, cand_values, buf)
        n_chosen = _groups_reaching(maxima, t, chosen)
        n = _values_reaching(row, t, chosen, n_chosen, group, cand_values, cand_units)
        _top_in_order(cand_values, cand_units, n, k, out_values[r], out_units[r], scratch, ranks)
        _finish_row(row, out_values[r], out_units[r], k, mode)
    return True


@njit(nogil=True, cache=True)
def collect_above(pre: Any, cutoff: Any, values: Any, flat: Any) -> int:
    """Values >= cutoff (and their flat positions, row-major) into values/flat up to their
    size; returns how many there are (beyond the size too), or -1 if a value is NaN/inf."""
    n_rows, n_units = pre.shape
    cap = values.shape[0]
    count = 0
    for r in range(n_rows):
        row = pre[r]
        bad = 0
        for j in range(n_units):
            v = row[j]
            bad += (v - v) != 0  # NaN or infinite
            if v >= cutoff:
                if count < cap:
                    values[count] = v
                    flat[count] = r * n_units + j
                count += 1
        if bad:
            return -1
    return count


# ----------------------------------------------------------------- threshold gates
@njit(nogil=True, cache=True)
def gate_counts(pre: Any, cut: Any, counts: Any) -> bool:
    """counts[r] = how many of row r's values exceed their unit's cut-off; False on NaN."""
    for r in range(pre.shape[0]):
        row = pre[r]
        n, nan = 0, 0
        for j in range(row.shape[0]):
            v = row[j]
            n += v > cut[j]
            nan += v != v
        if nan:
            return False
        counts[r] = n
    return True


@njit(nogil=True, cache=True)
def gate_collect(pre: Any, cut: Any, starts: Any, values: Any, units: Any) -> None:
    """Row r's values above their cut-offs, with their units, from values[starts[r]] on."""
    for r in range(pre.shape[0]):
        row = pre[r]
        at = starts[r]
        for j in range(row.shape[0]):
            if row[j] > cut[j]:
                values[at] = row[j]
                units[at] = j
                at += 1


@njit(nogil=True, cache=True)
def gate_dense(pre: Any, cut: Any) -> bool:
    """In place: each value at or below its unit's cut-off becomes 0; False on NaN (the
    rows are then partly gated)."""
    for r in range(pre.shape[0]):
        row = pre[r]
        nan = 0
        for j in range(row.shape[0]):
            v = row[j]
            nan += v != v
            if not v > cut[j]:
                row[j] = 0  # +0.0 (a negative value times 0 was -0.0)
        if nan:
            return False
    return True
