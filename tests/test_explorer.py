"""Explorer and Selection: the API of API.md, checked against brute-force dense computations."""

import numpy as np
import pytest
import traitlets
from sklearn.exceptions import NotFittedError

import sae_widgets as sw
from sae_widgets.explore.selection import Selection, SelectionError


@pytest.fixture(scope="module")
def fitted():
    ds = sw.datasets.superposition(n=800, n_features=16, dim=10, active=3.0, seed=0)
    sae = sw.SAE(n_units=24, activation="topk", k=3, epochs=1, batch_size=128, seed=0)
    return ds, sae.fit(ds.X)


@pytest.fixture
def explorer(fitted):
    ds, sae = fitted
    return sw.Explorer(sae, ds)


# ---- Selection ----------------------------------------------------------------------------


def test_selection_validates_every_trait():
    sel = Selection(n_units=10, n_samples=100, attributes=["rotation"])
    sel.unit = np.int64(3)  # numpy ints (np.argmax) are fine
    assert sel.unit == 3 and type(sel.unit) is int
    for bad in (10, -1):
        with pytest.raises(SelectionError, match=r"unit must be None or an int in \[0, 10\)"):
            sel.unit = bad
    assert sel.unit == 3  # a rejected value leaves the trait unchanged
    with pytest.raises(traitlets.TraitError):
        sel.unit = True
    sel.samples = np.array([7, 2, 7])
    assert sel.samples == [2, 7]
    with pytest.raises(ValueError, match=r"samples must be indices in \[0, 100\); got 100"):
        sel.samples = [1, 100]
    with pytest.raises(ValueError, match="probe_sample must be None or an int"):
        sel.probe_sample = 100
    with pytest.raises(ValueError, match=r"probe_attribute must be .*'rotation'.*got 'scale'"):
        sel.probe_attribute = "scale"
    with pytest.raises(ValueError, match="probe_value must be None or a finite float"):
        sel.probe_value = float("nan")
    sel.probe_attribute, sel.probe_value, sel.probe_sample = "rotation", 15, 4
    assert (sel.probe_attribute, sel.probe_value, sel.probe_sample) == ("rotation", 15.0, 4)
    assert isinstance(SelectionError("x"), traitlets.TraitError)
    assert Selection.class_traits()["unit"].help
    with pytest.raises(SelectionError):
        Selection(10, 100, unit=11)
    with pytest.raises(ValueError, match="n_units must be at least 1"):
        Selection(0, 100)


def test_selection_keeps_its_samples_as_a_read_only_array_too():
    sel = Selection(10, 100)
    assert sel.sample_array.tolist() == [] and sel.sample_array.dtype == np.int64
    given = np.array([9, 3, 3, 50])
    sel.samples = given
    assert sel.samples == [3, 9, 50] and sel.sample_array.tolist() == [3, 9, 50]
    already_sorted = np.array([1, 2, 5])
    sel.samples = already_sorted
    assert sel.sample_array is not already_sorted  # never the caller's array...
    assert already_sorted.flags.writeable  # ...which stays the caller's to change
    with pytest.raises(ValueError):
        sel.sample_array[0] = 4  # read-only: a view cannot change the selection behind it
    with sel.hold_trait_notifications():
        sel.samples = [7]
        sel.samples = [1, 2, 5]  # back where it was: no change
    assert sel.sample_array.tolist() == sel.samples == [1, 2, 5]
    with pytest.raises(ValueError, match=r"samples must be indices in \[0, 100\); got -1"):
        sel.samples = np.array([-1, 4])
    assert sel.sample_array.tolist() == [1, 2, 5]
    with pytest.raises(TypeError, match="1-D sequence of integer sample indices"):
        sel.samples = np.array([1.5])


def test_selection_notifies_once_per_real_change_and_links():
    sel = Selection(10, 100)
    seen = []
    sel.observe(lambda change: seen.append(change["new"]), names="samples")
    sel.samples = [3, 1]
    sel.samples = [1, 3]  # same set: no notification
    sel.samples = (5,)
    assert seen == [[1, 3], [5]]
    other = Selection(10, 100)
    link = traitlets.link((sel, "unit"), (other, "unit"))
    sel.unit = 4
    assert other.unit == 4
    other.unit = 6
    assert sel.unit == 6
    link.unlink()
    sel.clear()
    assert sel.unit is None and sel.samples == [] and other.unit == 6


def test_selection_wrong_types_raise_type_errors_naming_the_trait():
    sel = Selection(10, 100, attributes=["rotation"])
    for name, bad in (
        ("unit", "3"),
        ("probe_sample", 2.5),
        ("samples", {1, 2}),
        ("samples", None),
        ("probe_value", "high"),
        ("probe_attribute", 3),
    ):
        with pytest.raises(TypeError, match=name) as caught:
            setattr(sel, name, bad)
        assert isinstance(caught.value, traitlets.TraitError)  # what traitlets users catch
    assert sel.unit is None and sel.samples == []  # nothing changed
    sel.probe_value = np.float32(0.5)  # a numpy float (read off an array) is a float
    assert sel.probe_value == 0.5 and type(sel.probe_value) is float


# ---- construction and laziness -------------------------------------------------------------


def test_explorer_is_lazy_and_caches(fitted):
    ds, sae = fitted
    ex = sw.Explorer(sae, ds)
    assert not ex.is_encoded  # constructing it encoded nothing
    assert ex.selection.n_units == 24 and ex.selection.n_samples == len(ds)
    assert set(ex.selection.attributes) == set(ds.attributes)
    codes = ex.codes
    assert ex.is_encoded and ex.codes is codes
    assert ex.projection() is ex.projection("codes")
    assert ex.unit_summary(2) is ex.unit_summary(2)
    ex.refresh()
    assert not ex.is_encoded


def test_explorer_rejects_bad_inputs(fitted):
    ds, sae = fitted
    with pytest.raises(NotFittedError):
        sw.Explorer(sw.SAE(n_units=8), ds)
    with pytest.raises(ValueError, match="dataset must have the SAE's input dimension 10"):
        sw.Explorer(sae, sw.Dataset(np.zeros((5, 3), dtype=np.float32)))
    with pytest.raises(TypeError, match=r"sae must be a sae_widgets\.SAE"):
        sw.Explorer(object(), ds)
    with pytest.raises(ValueError, match="projection must be one of"):
        sw.Explorer(sae, ds, projection="pixels")
    ex = sw.Explorer(sae, ds.X)  # a bare array is wrapped into a Dataset
    assert len(ex.dataset) == len(ds) and ex.dataset.labels is None
    with pytest.raises(ValueError, match="unit must be in"):
        ex.unit_summary(24)


# ---- answers, against brute force ---------------------------------------------------------


def test_codes_equal_the_dense_transform(explorer, fitted):
    ds, sae = fitted
    Z = sae.transform(ds.X)
    np.testing.assert_allclose(explorer.codes.dense(np.arange(len(ds))), Z, atol=1e-6)
    assert explorer.codes.nnz == np.count_nonzero(Z)


def test_unit_summary_matches_dense_codes(explorer, fitted):
    ds, sae = fitted
    Z = sae.transform(ds.X)
    unit = int(np.argmax((Z != 0).sum(0)))
    summary = explorer.unit_summary(unit, top_n=5)
    column = Z[:, unit]
    order = np.lexsort((np.arange(len(ds)), -column))[:5]
    np.testing.assert_array_equal(summary.top_samples, order)
    np.testing.assert_allclose(summary.top_values, column[order], rtol=1e-6)
    assert summary.count == np.count_nonzero(column)
    fired_labels = ds.labels[column != 0]
    fired_labels = fired_labels[fired_labels >= 0]
    np.testing.assert_array_equal(
        summary.label_counts, np.bincount(fired_labels, minlength=len(ds.label_names))
    )
    assert summary.label_names == tuple(ds.label_names)
    directions = sae.components_ / np.linalg.norm(sae.components_, axis=1, keepdims=True)
    cosines = directions @ directions[unit]
    cosines[unit] = -np.inf
    assert summary.nearest_units[0] == np.argmax(cosines)
    np.testing.assert_array_equal(explorer.unit_direction(unit), sae.components_[unit])


def test_projection_and_rectangle_selection(explorer, fitted):
    ds, _ = fitted
    proj = explorer.projection()
    assert proj.coords.shape == (len(ds), 2) and proj.coords.dtype == np.float32
    dense = explorer.codes.dense(np.arange(len(ds))).astype(np.float64)
    _, s, _ = np.linalg.svd(dense - dense.mean(0), full_matrices=False)
    np.testing.assert_allclose(proj.explained_variance_ratio, (s**2 / (s**2).sum())[:2], rtol=1e-3)
    inputs = explorer.projection("inputs")
    assert inputs.source == "inputs" and inputs is not proj
    x, y = proj.coords[:, 0], proj.coords[:, 1]
    box = ((0.0, float(x.max())), (float(y.min()), 0.0))
    picked = explorer.samples_in_rect(*box)
    expected = np.flatnonzero((x >= 0) & (y <= 0))
    np.testing.assert_array_equal(picked, expected)
    # A lasso's outline: the triangle x >= 0, y <= 0, x - y <= top (the third corner cuts).
    top = float(x.max())
    triangle = [[0.0, 0.0], [top, 0.0], [0.0, -top]]
    inside = np.flatnonzero((x > 0) & (y < 0) & (x - y < top))
    lassoed = explorer.samples_in_polygon(triangle)
    assert set(inside) <= set(lassoed) <= set(expected) and len(inside) > 0


def test_enrichment_and_heatmap_follow_the_selection(explorer, fitted):
    ds, sae = fitted
    Z = sae.transform(ds.X)
    with pytest.raises(ValueError, match="samples must select at least one sample"):
        explorer.enrichment()
    samples = np.flatnonzero(ds.labels == 3)
    explorer.selection.samples = samples
    ranked = explorer.enrichment(top=3)
    np.testing.assert_array_equal(ranked.units, explorer.enrichment(samples, top=3).units)
    heat = explorer.heatmap(max_units=5)
    np.testing.assert_array_equal(heat.rows, samples)  # fewer than max_rows: all of them
    np.testing.assert_array_equal(heat.units[:3], ranked.units)
    np.testing.assert_array_equal(heat.matrix, explorer.codes.dense(heat.rows, heat.units))
    np.testing.assert_allclose(heat.matrix, Z[heat.rows][:, heat.units], atol=1e-6)
    np.testing.assert_array_equal(heat.row_labels, ds.labels[heat.rows])
    custom = explorer.heatmap(rows=[5, 1], units=[0, 23])
    np.testing.assert_allclose(custom.matrix, Z[[5, 1]][:, [0, 23]], atol=1e-6)
    # the kept ranking answers for the same set only: a caller's array changed in place
    # (same object, new content) is ranked again
    mine = np.flatnonzero(ds.labels == 3)
    first = explorer.enrichment(mine, top=None)
    mine[:] = np.flatnonzero(ds.labels == 5)[: len(mine)]
    mine.sort()
    again = explorer.enrichment(mine, top=None)
    assert again.n_inside == len(mine)
    np.testing.assert_array_equal(again.units, explorer.enrichment(mine.copy(), top=None).units)
    assert not np.array_equal(again.count_inside, first.count_inside)


def test_heatmap_without_selection_is_label_stratified(explorer, fitted):
    ds, _ = fitted
    heat = explorer.heatmap(max_rows=40, max_units=8)
    assert heat.matrix.shape == (40, 8)
    counts = np.bincount(ds.labels[heat.rows] + 1)
    assert counts.max() - counts[counts > 0].min() <= 1 or counts.min() < 2
    frequency = explorer.codes.counts
    assert np.all(np.diff(frequency[heat.units]) <= 0)


def test_probe_and_reconstruct(explorer, fitted):
    ds, sae = fitted
    result = explorer.probe(3, "feature_1", values=[0.0, 1.0])
    varied = np.stack([ds.attributes["feature_1"].apply([3], v)[0] for v in (0.0, 1.0)])
    np.testing.assert_allclose(result.response, sae.transform(varied), rtol=1e-5, atol=1e-6)
    averaged = explorer.probe([3, 4], ds.attributes["feature_1"])
    assert averaged.response.shape == (len(ds.attributes["feature_1"].values), 24)
    with pytest.raises(ValueError, match="attribute must be one of the dataset's"):
        explorer.probe(3, "rotation")
    with pytest.raises(ValueError, match="samples must be in"):
        explorer.probe(len(ds), "feature_1")
    rebuilt = explorer.reconstruct([0, 9])
    np.testing.assert_allclose(
        rebuilt, sae.inverse_transform(sae.transform(ds.X[[0, 9]])), rtol=1e-5, atol=1e-5
    )
    assert explorer.reconstruct(4).shape == (1, ds.X.shape[1])


@pytest.mark.parametrize("activation", ["relu", "jumprelu"])
def test_relu_and_jumprelu_codes_keep_only_non_zeros(activation):
    ds = sw.datasets.superposition(n=300, n_features=8, dim=6, active=2.0, seed=2)
    sae = sw.SAE(n_units=12, activation=activation, epochs=1, batch_size=64, seed=0).fit(ds.X)
    ex = sw.Explorer(sae, ds)
    Z = sae.transform(ds.X)
    assert ex.codes.nnz == np.count_nonzero(Z)
    np.testing.assert_allclose(ex.codes.dense(np.arange(300)), Z, atol=1e-6)


@pytest.mark.parametrize(("n_samples", "n_units"), [(1, 8), (2, 8), (40, 2), (40, 1)])
def test_projection_of_tiny_data_or_a_tiny_sae_has_two_columns(
    n_samples: int, n_units: int
) -> None:
    # issue 14 item 9: dashboard() failed with sklearn's "n_components must be at most 1"
    ds = sw.datasets.digits()[:40]
    sae = sw.SAE(n_units=n_units, k=1, epochs=1).fit(ds.X, progress=False)
    ex = sw.Explorer(sae, ds[:n_samples])
    for source in ("codes", "inputs"):
        projection = ex.projection(source)
        assert projection.coords.shape == (n_samples, 2)
        assert np.isfinite(projection.coords).all()
    ex.dashboard()  # builds: the PCA view shows the one direction there is
    probe = ex.probe(0, "thickness", values=[3000.0])
    assert np.isfinite(probe.response).all()
