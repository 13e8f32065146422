"""Rectangle selection, enrichment and heatmap matrices against brute-force dense versions."""

import numpy as np
import pytest

from sae_widgets.analysis.codes import CodeStore
from sae_widgets.analysis.selection import (
    default_heatmap_rows,
    default_heatmap_units,
    enrichment,
    heatmap_matrix,
    samples_in_polygon,
    samples_in_rect,
    y_order,
)

N, U = 600, 25


def make_codes(seed=0):
    """Codes where unit 3 fires on samples 0..99 only, unit 0 everywhere, unit 24 nowhere."""
    rng = np.random.default_rng(seed)
    Z = rng.random((N, U), dtype=np.float32)
    Z[Z < 0.85] = 0
    Z[:, 3] = 0
    Z[:100, 3] = rng.random(100, dtype=np.float32) + 0.5
    Z[:, 0] = rng.random(N, dtype=np.float32) + 0.1
    Z[:, 24] = 0
    Z[150, 7] = 3.0  # a rare unit that fires once inside the selection below
    return Z


def brute_scores(Z, samples):
    fired = Z != 0
    inside = np.zeros(N, dtype=bool)
    inside[samples] = True
    n_in, n_out = inside.sum(), (~inside).sum()
    c_in, c_out = fired[inside].sum(0), fired[~inside].sum(0)
    prior = (fired.sum(0) + 0.5) / (N + 1)
    p_in = (c_in + prior) / (n_in + 1)
    p_out = (c_out + prior) / (n_out + 1)
    return np.where(fired.any(0), p_in * np.log(p_in / p_out), 0), c_in, c_out, inside


def test_samples_in_rect_matches_a_loop_and_ignores_endpoint_order():
    rng = np.random.default_rng(0)
    coords = rng.standard_normal((500, 2)).astype(np.float32)
    coords[7] = [0.5, -0.25]  # exactly on a corner: bounds are inclusive
    expected = [i for i, (x, y) in enumerate(coords) if -0.3 <= x <= 0.5 and -0.25 <= y <= 1.0]
    np.testing.assert_array_equal(samples_in_rect(coords, (-0.3, 0.5), (-0.25, 1.0)), expected)
    np.testing.assert_array_equal(samples_in_rect(coords, (0.5, -0.3), (1.0, -0.25)), expected)
    assert 7 in expected
    assert samples_in_rect(coords, (10, 11), (10, 11)).size == 0
    with pytest.raises(ValueError, match="coords must have shape"):
        samples_in_rect(coords[:, 0], (0, 1), (0, 1))
    with pytest.raises(TypeError, match="x_range must be a pair"):
        samples_in_rect(coords, 0.5, (0, 1))
    with pytest.raises(ValueError, match="y_range must not contain NaN"):
        samples_in_rect(coords, (0, 1), (0, np.nan))


def test_samples_in_polygon_matches_matplotlib_for_a_lasso_and_a_rectangle():
    from matplotlib.path import Path

    rng = np.random.default_rng(1)
    coords = rng.standard_normal((20_000, 2)).astype(np.float32)
    turn = np.linspace(0, 2 * np.pi, 150, endpoint=False)
    radius = 1.0 + 0.5 * np.sin(7 * turn)  # a star: concave, as a hand-drawn lasso is
    lasso = np.c_[0.3 + radius * np.cos(turn), -0.2 + radius * np.sin(turn)]
    expected = np.flatnonzero(Path(lasso).contains_points(coords))
    by_y = y_order(coords)
    got = samples_in_polygon(coords, lasso, by_y)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(samples_in_polygon(coords, lasso), expected)  # no by_y
    assert 1000 < len(got) < 20_000
    # A self-crossing outline (a figure eight): even-odd, as matplotlib's path test.
    eight = np.array([[-1, -1], [1, 1], [1, -1], [-1, 1]], dtype=np.float64)
    np.testing.assert_array_equal(
        samples_in_polygon(coords, eight, by_y),
        np.flatnonzero(Path(eight).contains_points(coords)),
    )
    # A rectangle tool's outline (closed or not) selects as the rectangle does.
    corners = [[-0.5, -1.0], [0.7, -1.0], [0.7, 0.4], [-0.5, 0.4]]
    rect = samples_in_rect(coords, (-0.5, 0.7), (-1.0, 0.4))
    np.testing.assert_array_equal(samples_in_polygon(coords, corners, by_y), rect)
    np.testing.assert_array_equal(samples_in_polygon(coords, [*corners, corners[0]]), rect)
    assert samples_in_polygon(coords, [[5, 5], [6, 5], [5, 6]]).size == 0
    with pytest.raises(ValueError, match=r"polygon must have shape \(m, 2\) with m >= 3"):
        samples_in_polygon(coords, [[0, 0], [1, 1]])
    with pytest.raises(ValueError, match="polygon must hold finite"):
        samples_in_polygon(coords, [[0, 0], [1, np.nan], [1, 0]])
    with pytest.raises(ValueError, match="by_y must order all 20000 points"):
        samples_in_polygon(coords, lasso, y_order(coords[:10]))


def test_unit_totals_and_sorted_unique_match_numpy():
    from sae_widgets.analysis.checks import sorted_unique

    Z = make_codes()
    store = CodeStore(Z)
    rows = np.array([5, 3, 3, 599, 0])  # a repeated sample counts twice
    counts, sums = store.unit_totals(rows)
    np.testing.assert_array_equal(counts, (Z[rows] != 0).sum(0))
    np.testing.assert_allclose(sums, Z[rows].astype(np.float64).sum(0), rtol=1e-12)
    assert counts.dtype == np.int64 and sums.dtype == np.float64
    # the co-firing read: the units of each row, row after row
    _, units, _ = store.rows_entries(rows)
    np.testing.assert_array_equal(store.units_of_rows(rows), units)
    np.testing.assert_array_equal(store.unit_counts(rows), counts)
    # TopK-like codes (every row k entries) take the fixed-width path: the same answers
    rng = np.random.default_rng(1)
    topk = np.zeros((300, 40), dtype=np.float32)
    for row in topk:
        row[rng.choice(40, size=3, replace=False)] = rng.random(3) + 0.1
    fixed = CodeStore(topk)
    assert fixed._row_width() == 3 and store._row_width() == 0
    picked = np.array([7, 299, 0, 7, 150])
    np.testing.assert_array_equal(fixed.unit_counts(picked), (topk[picked] != 0).sum(0))
    np.testing.assert_array_equal(fixed.units_of_rows(picked), fixed.rows_entries(picked)[1])
    rng = np.random.default_rng(0)
    for values in (rng.integers(0, 50, 200), np.arange(10), np.zeros(0, np.int64), [4]):
        values = np.asarray(values, dtype=np.int64)
        np.testing.assert_array_equal(sorted_unique(values), np.unique(values))


def test_enrichment_matches_brute_force_and_ranks_the_specific_unit_first():
    Z = make_codes()
    store = CodeStore(Z)
    samples = np.arange(0, 160)  # unit 3's samples plus 60 others
    result = enrichment(store, samples, top=None)
    score, c_in, c_out, inside = brute_scores(Z, samples)
    expected = sorted(range(U), key=lambda u: (-score[u], u))
    np.testing.assert_array_equal(result.units, expected)
    np.testing.assert_allclose(result.score, score[expected], rtol=1e-9)
    np.testing.assert_array_equal(result.count_inside, c_in[expected])
    np.testing.assert_allclose(result.rate_inside, c_in[expected] / 160)
    np.testing.assert_allclose(result.rate_outside, c_out[expected] / (N - 160))
    sums_in = np.where(inside[:, None], Z, 0).sum(0)
    mean_in = np.divide(sums_in, c_in, out=np.zeros(U), where=c_in > 0)
    np.testing.assert_allclose(result.mean_inside, mean_in[expected], rtol=1e-5)
    assert result.n_inside == 160 and result.n_outside == N - 160
    assert result.units[0] == 3
    # Firing everywhere (0) or never (24) earns nothing; a single rare hit (7) earns little.
    ranks = {u: r for r, u in enumerate(result.units)}
    assert abs(result.score[ranks[0]]) < 1e-3 and result.score[ranks[24]] == 0
    assert result.score[ranks[7]] < result.score[0] / 10


def test_enrichment_top_duplicates_and_whole_dataset():
    Z = make_codes()
    store = CodeStore(Z)
    full = enrichment(store, np.arange(100), top=None)
    top = enrichment(store, np.r_[np.arange(100), np.arange(50)], top=5)
    np.testing.assert_array_equal(top.units, full.units[:5])
    assert top.n_inside == 100
    everything = enrichment(store, np.arange(N))
    assert everything.n_outside == 0 and np.all(np.abs(everything.score) < 1e-2)
    np.testing.assert_array_equal(everything.rate_outside, 0)
    with pytest.raises(ValueError, match="samples must select at least one sample"):
        enrichment(store, [])
    with pytest.raises(ValueError, match="samples must hold indices"):
        enrichment(store, [N])


def test_heatmap_matrix_matches_dense_indexing():
    Z = make_codes()
    store = CodeStore(Z)
    rows, units = np.array([5, 0, 599, 5]), np.array([3, 24, 0, 11])
    matrix = heatmap_matrix(store, rows, units)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, Z[rows][:, units])


def test_default_rows_follow_the_selection_capped_and_grouped_by_label():
    labels = np.repeat(np.arange(3), 200)[::-1].copy()
    picked = default_heatmap_rows(N, samples=[590, 10, 300, 10], labels=labels, cap=50)
    np.testing.assert_array_equal(picked, [590, 300, 10])  # label 0, 1, 2
    capped = default_heatmap_rows(N, samples=np.arange(0, 600, 2), cap=40, seed=1)
    assert len(capped) == 40 and set(capped) <= set(range(0, 600, 2))
    np.testing.assert_array_equal(capped, np.sort(capped))


def test_default_rows_without_selection_are_label_stratified():
    labels = np.r_[np.zeros(500), np.ones(90), np.full(10, 2)].astype(int)
    labels[-3:] = -1
    rows = default_heatmap_rows(N, labels=labels, cap=60, seed=0)
    assert len(rows) == len(set(rows)) == 60
    counts = np.bincount(labels[rows] + 1, minlength=4)  # -1, 0, 1, 2
    # Label 2 (7 samples) and "unlabelled" (3) give up the rest of their share to 0 and 1.
    np.testing.assert_array_equal(counts, [3, 25, 25, 7])
    assert np.all(np.diff(labels[rows]) >= 0)
    plain = default_heatmap_rows(N, cap=30, seed=0)
    assert len(plain) == 30 and np.all(np.diff(plain) > 0)
    assert len(default_heatmap_rows(10, cap=200)) == 10


def test_default_units_rank_by_enrichment_or_frequency():
    Z = make_codes()
    store = CodeStore(Z)
    by_selection = default_heatmap_units(store, samples=np.arange(100), cap=4)
    np.testing.assert_array_equal(by_selection, enrichment(store, np.arange(100), top=4).units)
    by_frequency = default_heatmap_units(store, cap=5)
    counts = (Z != 0).sum(0)
    expected = sorted(np.flatnonzero(counts), key=lambda u: (-counts[u], u))[:5]
    np.testing.assert_array_equal(by_frequency, expected)
    assert 24 not in default_heatmap_units(store, cap=U)


def test_head_equals_asking_for_fewer_units_and_default_units_reuse_a_ranking():
    store = CodeStore(make_codes())
    samples = np.arange(50, 250)
    full = enrichment(store, samples, top=None)
    short = enrichment(store, samples, top=6)
    head = full.head(6)
    for field in ("units", "score", "rate_inside", "rate_outside", "mean_inside", "count_inside"):
        np.testing.assert_array_equal(getattr(head, field), getattr(short, field))
    np.testing.assert_array_equal(
        default_heatmap_units(store, samples, cap=6, ranked=full), short.units
    )
    with pytest.raises(ValueError, match="n must be at least 1"):
        full.head(0)


def test_rect_selection_compares_in_the_coordinates_dtype():
    """The compiled rectangle test selects exactly what numpy's comparisons select (bounds
    compared in the points' dtype), bounds on points included, for float32 and float64."""
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        coords = rng.standard_normal((5000, 2)).astype(dtype)
        x, y = coords[:, 0], coords[:, 1]
        for x_range, y_range in [
            ((float(x[7]), float(x[9])), (-0.3, float(y[11]))),  # bounds on points, any order
            ((-0.1, 0.1), (0.2, -0.2)),  # not representable in float32
            ((5.0, 6.0), (0.0, 1.0)),  # empty
        ]:
            (a, b), (c, d) = sorted(x_range), sorted(y_range)
            expected = np.flatnonzero((x >= a) & (x <= b) & (y >= c) & (y <= d))
            got = samples_in_rect(coords, x_range, y_range)
            np.testing.assert_array_equal(got, expected)
            assert got.dtype == np.int64
