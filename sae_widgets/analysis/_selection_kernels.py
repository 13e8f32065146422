"""The numba loops of `samples_in_rect` and `samples_in_polygon` (imported on first use;
compiled once and cached on disk).

Both run over 10^6 points on every brush release: one pass each, branch-free, with no
temporary boolean arrays (numpy needed four comparisons, three ands and a scan for a
rectangle; a lasso built one temporary per edge). They compute exactly what the numpy
expressions they replace did: the same comparisons in the same dtypes, the same float64
crossing formula.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def points_in_rect(x: Any, y: Any, x_low: Any, x_high: Any, y_low: Any, y_high: Any) -> Any:
    """Ascending int64 indices i with x_low <= x[i] <= x_high and y_low <= y[i] <= y_high."""
    out = np.empty(len(x), dtype=np.int64)
    n = 0
    for i in range(len(x)):  # branch-free: an "if" here mispredicts on half the points
        xi = x[i]
        yi = y[i]
        out[n] = i
        n += (xi >= x_low) & (xi <= x_high) & (yi >= y_low) & (yi <= y_high)
    return out[:n].copy()


@njit(nogil=True, cache=True)
def points_in_polygon(order: Any, xs: Any, ys: Any, vertices: Any, bounds: Any) -> Any:
    """Crossing-number test of the points sorted by y (`order`, their `xs`, `ys`) against the
    closed outline `vertices`; `bounds[v]` is where vertex v's y falls in `ys`. Returns the
    ascending indices (into the unsorted points) of the points inside."""
    n = len(order)
    inside = np.zeros(n, dtype=np.bool_)
    m = len(vertices)
    for a in range(m):
        b = a + 1 if a + 1 < m else 0
        x0, y0 = vertices[a, 0], vertices[a, 1]
        x1, y1 = vertices[b, 0], vertices[b, 1]
        lo, hi = bounds[a], bounds[b]
        if lo > hi:
            lo, hi = hi, lo
        if y0 == y1 or lo == hi:
            continue  # a horizontal edge, or no point in its band [min y, max y)
        slope = (x1 - x0) / (y1 - y0)
        for i in range(lo, hi):  # branch-free, as in points_in_rect
            inside[i] ^= xs[i] < x0 + (ys[i] - y0) * slope
    chosen = np.empty(n, dtype=np.int64)  # the inside points' indices, in y order
    count = 0
    for i in range(n):
        chosen[count] = order[i]
        count += inside[i]
    mask = np.zeros(n, dtype=np.bool_)
    for j in range(count):
        mask[chosen[j]] = True
    out = np.empty(n, dtype=np.int64)  # ascending: a scan of the mask
    k = 0
    for i in range(n):
        out[k] = i
        k += mask[i]
    return out[:k].copy()
