"""From a brushed rectangle to samples, and from samples to the units that characterise them.

Everything here reads only the CSR rows of the selected samples: inside-counts come from
`CodeStore.unit_counts` (the rows' unit indices only; the activation sums behind the mean
columns are read only if asked for), and outside = dataset totals - inside, so a 10,000-sample
selection of a 100,000-sample dataset touches 10,000 rows, not 100,000.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sae_widgets.analysis.checks import (
    check_indices,
    check_positive_int,
    check_seed,
    numpy_of,
    sorted_unique,
)
from sae_widgets.analysis.codes import CodeStore, check_store
from sae_widgets.analysis.summary import check_labels, top_entries

__all__ = [
    "Enrichment",
    "HeatmapData",
    "default_heatmap_rows",
    "default_heatmap_units",
    "enrichment",
    "heatmap_matrix",
    "samples_in_polygon",
    "samples_in_rect",
    "y_order",
]


def _check_range(bounds: Any, name: str) -> tuple[float, float]:
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair of numbers (low, high); got {bounds!r}") from None
    if np.isnan(low) or np.isnan(high):
        raise ValueError(f"{name} must not contain NaN; got {bounds!r}")
    return (low, high) if low <= high else (high, low)


def samples_in_rect(coords: Any, x_range: Any, y_range: Any) -> NDArray[np.int64]:
    """Indices (ascending) of the points of `coords` inside a rectangle, bounds included.

    `coords` is (n, 2) or wider (the first two columns are used); each range is a pair in
    either order, as a brush reports it.
    """
    points = _points(coords)
    x_low, x_high = _check_range(x_range, "x_range")
    y_low, y_high = _check_range(y_range, "y_range")
    x, y = points[:, 0], points[:, 1]
    if points.dtype in (np.float32, np.float64):  # one compiled pass (numba), same comparisons
        from sae_widgets.analysis._selection_kernels import points_in_rect

        kind = points.dtype.type  # numpy compares with a Python float in the array's dtype
        found: NDArray[np.int64] = points_in_rect(
            x, y, kind(x_low), kind(x_high), kind(y_low), kind(y_high)
        )
        return found
    inside = (x >= x_low) & (x <= x_high) & (y >= y_low) & (y <= y_high)
    return np.flatnonzero(inside).astype(np.int64)


def y_order(coords: Any) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """The points of `coords` sorted by y: (order, x, y), for `samples_in_polygon` (compute
    once per projection and pass it to every call)."""
    points = _points(coords)
    order = np.argsort(points[:, 1], kind="stable").astype(np.int64)
    return order, points[order, 0].astype(np.float64), points[order, 1].astype(np.float64)


def _points(coords: Any) -> NDArray[Any]:
    points = np.asarray(numpy_of(coords, "coords"))
    if points.ndim != 2 or points.shape[1] < 2:
        raise ValueError(f"coords must have shape (n, 2); got {points.shape}")
    return points


def _is_axis_rectangle(vertices: NDArray[np.float64]) -> bool:
    """Whether an outline is an axis-aligned rectangle (4 corners, or 5 with the first
    repeated): every edge horizontal or vertical, two distinct x and two distinct y."""
    corners = vertices[:-1] if len(vertices) == 5 else vertices
    if len(corners) != 4 or (len(vertices) == 5 and not np.array_equal(vertices[0], vertices[-1])):
        return False
    step = np.diff(np.vstack([corners, corners[:1]]), axis=0)
    axis_aligned = bool(np.all((step[:, 0] == 0) ^ (step[:, 1] == 0)))
    return axis_aligned and len(np.unique(corners[:, 0])) == len(np.unique(corners[:, 1])) == 2


def samples_in_polygon(
    coords: Any,
    polygon: Any,
    by_y: tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]] | None = None,
) -> NDArray[np.int64]:
    """Indices (ascending) of the points of `coords` inside a polygon (a lasso's outline).

    `polygon` is (m, 2) vertices in data coordinates, m >= 3, closed implicitly. Crossing-number
    test, one edge at a time: with the points sorted by y (`by_y`, from `y_order`), the points
    an edge's horizontal band can cross are one contiguous slice, so the work grows with the
    points near the outline's rows, not with points x vertices (10^6 points, a 200-vertex
    lasso: tens of ms). Points exactly on the outline may fall either side.
    """
    points = _points(coords)
    try:
        vertices = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError):  # strings, objects, ragged vertex lists
        raise TypeError(
            f"polygon must be (m, 2) vertex coordinates (numbers); got {polygon!r:.80}"
        ) from None
    if vertices.ndim != 2 or vertices.shape[1] != 2 or len(vertices) < 3:
        raise ValueError(f"polygon must have shape (m, 2) with m >= 3; got {vertices.shape}")
    if not np.isfinite(vertices).all():
        raise ValueError("polygon must hold finite coordinates; got NaN or infinity")
    if _is_axis_rectangle(vertices):  # a rectangle tool's outline: one vectorised test
        low, high = vertices.min(axis=0), vertices.max(axis=0)
        return samples_in_rect(points, (low[0], high[0]), (low[1], high[1]))
    order, xs, ys = y_order(points) if by_y is None else by_y
    if len(order) != len(points):
        raise ValueError(f"by_y must order all {len(points)} points; got {len(order)}")
    from sae_widgets.analysis._selection_kernels import points_in_polygon

    bounds = np.searchsorted(ys, vertices[:, 1], side="left").astype(np.int64)
    found: NDArray[np.int64] = points_in_polygon(
        np.ascontiguousarray(order, dtype=np.int64),
        np.ascontiguousarray(xs, dtype=np.float64),
        np.ascontiguousarray(ys, dtype=np.float64),
        np.ascontiguousarray(vertices),
        bounds,
    )
    return found


class _Means:
    """Every unit's mean activation inside and outside a sample set, computed once, on first
    use: the activation sums cost a second gather of the rows' values that ranking skips."""

    def __init__(self, store: CodeStore, rows: NDArray[np.int64]) -> None:
        self._store, self._rows = store, rows
        self._means: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None

    def get(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        if self._means is None:
            store = self._store
            count_in, sum_in = store.unit_totals(self._rows)
            count_out, sum_out = store.counts - count_in, store.sums - sum_in

            def mean(sums: NDArray[np.float64], counts: NDArray[np.int64]) -> NDArray[np.float64]:
                return np.divide(sums, counts, out=np.zeros(store.n_units), where=counts > 0)

            self._means = (mean(sum_in, count_in), mean(sum_out, count_out))
        return self._means


@dataclass(frozen=True)
class Enrichment:
    """Units ranked by how specifically they fire on a set of samples.

    The score of a unit is ``p_in * log(p_in / p_out)``, where p_in and p_out are its firing
    rates inside and outside the set, each smoothed towards the unit's dataset-wide rate with
    one pseudo-sample (so tiny counts cannot produce huge ratios). It is the unit's term of
    the KL divergence between the two firing distributions: 0 for a unit that fires as often
    everywhere (even one that always fires), large for a unit that fires on most of the set
    and rarely elsewhere, and small for a rare unit that fires on a handful of the set.
    Units that never fire score exactly 0; units depleted in the set score below 0.
    """

    units: NDArray[np.int64]
    """Units, highest score first (ties: lower unit first)."""
    score: NDArray[np.float64]
    rate_inside: NDArray[np.float64]
    """Fraction of the selected samples on which the unit fires (unsmoothed)."""
    rate_outside: NDArray[np.float64]
    count_inside: NDArray[np.int64]
    n_inside: int
    n_outside: int
    _means: _Means = field(repr=False, compare=False)

    @property
    def mean_inside(self) -> NDArray[np.float64]:
        """Mean non-zero activation over the selected samples where it fires (0 if none);
        computed on first use (the ranking needs only counts)."""
        return self._means.get()[0][self.units]

    @property
    def mean_outside(self) -> NDArray[np.float64]:
        """The same over the samples not selected."""
        return self._means.get()[1][self.units]

    def head(self, n: int) -> Enrichment:
        """The first `n` units of this ranking (the same as asking `enrichment` for top=n)."""
        n = check_positive_int(n, "n")
        return replace(
            self,
            units=self.units[:n],
            score=self.score[:n],
            rate_inside=self.rate_inside[:n],
            rate_outside=self.rate_outside[:n],
            count_inside=self.count_inside[:n],
        )


def enrichment(store: CodeStore, samples: Any, top: int | None = 20) -> Enrichment:
    """Rank units by enrichment in `samples` (see `Enrichment` for the score).

    `samples` are distinct-ified; `top` limits the result (None: every unit).
    """
    check_store(store)
    rows = sorted_unique(check_indices(samples, store.n_samples, "samples"))
    if len(rows) == 0:
        raise ValueError("samples must select at least one sample; got none")
    if top is not None:
        top = check_positive_int(top, "top")
    count_in = store.unit_counts(rows)
    count_out = store.counts - count_in
    n_in, n_out = len(rows), store.n_samples - len(rows)

    prior = (store.counts + 0.5) / (store.n_samples + 1.0)
    p_in = (count_in + prior) / (n_in + 1.0)
    p_out = (count_out + prior) / (n_out + 1.0)
    score = np.where(store.counts > 0, p_in * np.log(p_in / p_out), 0.0)  # dead units: 0

    keep = store.n_units if top is None else min(top, store.n_units)
    ranked, ranked_score = top_entries(np.arange(store.n_units), score, keep)
    return Enrichment(
        units=ranked,
        score=ranked_score,
        rate_inside=count_in[ranked] / n_in,
        rate_outside=count_out[ranked] / n_out if n_out else np.zeros(len(ranked)),
        count_inside=count_in[ranked].astype(np.int64),
        n_inside=n_in,
        n_outside=n_out,
        _means=_Means(store, rows),
    )


def heatmap_matrix(store: CodeStore, rows: Any, units: Any) -> NDArray[np.float32]:
    """Dense (len(rows), len(units)) float32 activations of the given samples and units."""
    check_store(store)
    return store.dense(rows, units)


def default_heatmap_rows(
    n_samples: int,
    samples: Any = None,
    labels: Any = None,
    cap: int = 200,
    seed: int = 0,
) -> NDArray[np.int64]:
    """Which samples a heatmap shows when the caller does not say.

    The selection when there is one (a random `cap` of it if larger), otherwise a
    label-stratified random sample of at most `cap` (each label gets an equal share, labels
    with too few samples give their share to the others), otherwise a uniform random sample.
    With labels, rows are grouped by label (then by index), so classes read as bands.
    """
    n_samples = check_positive_int(n_samples, "n_samples", minimum=0)
    cap = check_positive_int(cap, "cap")
    seed = check_seed(seed)
    label_array = None if labels is None else check_labels(labels, n_samples)
    rng = np.random.default_rng(seed)
    chosen = sorted_unique(check_indices([] if samples is None else samples, n_samples, "samples"))
    if len(chosen) > cap:
        chosen = np.sort(rng.choice(chosen, size=cap, replace=False))
    elif len(chosen) == 0:
        if label_array is None:
            chosen = np.sort(rng.choice(n_samples, size=min(cap, n_samples), replace=False))
        else:
            # Rank each sample within its label at random; taking the lowest ranks first
            # gives every label the same share until a label runs out.
            order = rng.permutation(n_samples)
            by_label = order[np.argsort(label_array[order], kind="stable")]
            sorted_labels = label_array[by_label]
            first = np.searchsorted(sorted_labels, sorted_labels, side="left")
            rank = np.empty(n_samples, dtype=np.int64)
            rank[by_label] = np.arange(n_samples) - first
            chosen = np.sort(np.lexsort((rng.random(n_samples), rank))[:cap])
    if label_array is not None:
        chosen = chosen[np.argsort(label_array[chosen], kind="stable")]
    return chosen.astype(np.int64)


def default_heatmap_units(
    store: CodeStore, samples: Any = None, cap: int = 64, ranked: Enrichment | None = None
) -> NDArray[np.int64]:
    """Which units a heatmap shows when the caller does not say.

    With a selection: the `cap` most enriched units (see `enrichment`; pass `ranked`, the
    enrichment of `samples` already computed, to reuse it). Without: the `cap` most
    frequently firing units (units that never fire are left out).
    """
    check_store(store)
    cap = check_positive_int(cap, "cap")
    chosen = check_indices([] if samples is None else samples, store.n_samples, "samples")
    if len(chosen):
        ranking = enrichment(store, chosen, top=cap) if ranked is None else ranked.head(cap)
        return ranking.units
    alive = np.flatnonzero(store.counts)
    units, _ = top_entries(alive, store.counts[alive], cap)
    return units


@dataclass(frozen=True)
class HeatmapData:
    """A heatmap's matrix with the samples and units along its axes."""

    matrix: NDArray[np.float32]
    """(len(rows), len(units)) activations."""
    rows: NDArray[np.int64]
    """Sample index of each row."""
    units: NDArray[np.int64]
    """Unit index of each column."""
    row_labels: NDArray[np.int64] | None
    """Label of each row, when the dataset has labels."""


def firing_columns(data: HeatmapData) -> HeatmapData:
    """`data` without the columns of units that are zero on every row (kept if all are)."""
    firing = np.any(data.matrix != 0, axis=0)
    if firing.all() or not firing.any():
        return data
    return replace(data, matrix=data.matrix[:, firing], units=data.units[firing])
