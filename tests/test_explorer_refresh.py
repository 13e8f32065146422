"""`Explorer.refresh` after more training or a refit: every open view redraws from the new
codes (a selection always matches what is drawn), the Selection's unit range follows the SAE,
and a stale or mismatched SAE gets a clear ValueError, never a raw IndexError."""

from __future__ import annotations

from unittest.mock import Mock

import numpy as np
import pytest
import torch
from traitlets import All

import sae_widgets as sw
from sae_widgets.analysis.unit_stats import unit_stats

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


def fit(sae, X, partial=False):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny SAE; the test machine's cores are shared
    try:
        return sae.partial_fit(X) if partial else sae.fit(X, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def digits():
    return sw.datasets.digits()


@pytest.fixture
def sae(digits):
    """A fresh SAE per test: the tests train it further or refit it."""
    return fit(sw.SAE(n_units=16, k=4, epochs=1, batch_size=64, seed=0), digits.X)


def train_more(sae, X):
    for _ in range(5):
        fit(sae, X[:1024], partial=True)


def drawn(view):
    return np.column_stack([view.scatter.x, view.scatter.y]).astype(np.float64)


def test_views_redraw_after_more_training_and_a_rectangle_selects_what_is_drawn(sae, digits):
    ex = sw.Explorer(sae, digits)
    dashboard = ex.dashboard(select_with="rectangle")
    dashboard.brush.color_by.value = "activation"
    ex.selection.unit = 3
    old = drawn(dashboard.brush)
    train_more(sae, digits.X)
    ex.refresh()

    coords = ex.projection().coords
    assert not np.allclose(coords, old, atol=1e-3)  # the training moved the projection
    brush = dashboard.brush
    np.testing.assert_allclose(drawn(brush), coords, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        np.column_stack([brush.lasso_target.x, brush.lasso_target.y]), coords, atol=1e-6
    )
    # A rectangle around the upper-right quarter of the drawn points selects exactly them.
    points = drawn(brush)
    (x0, x1), (y0, y1) = np.quantile(points[:, 0], [0.5, 1]), np.quantile(points[:, 1], [0.5, 1])
    inside = np.flatnonzero(
        (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)
    )
    brush.brush.brushing = True
    brush.brush.selected_x, brush.brush.selected_y = [x0, x1], [y0, y1]
    brush.brush.brushing = False
    assert ex.selection.samples == inside.tolist()

    # Colours, unit table, inspector, heatmap and probe all read the new codes.
    samples, values = ex.codes.unit_samples(3)
    activation = np.zeros(ex.n_samples, np.float32)
    activation[samples] = values
    from sae_widgets.widgets._render import ACTIVATION_PALETTE, activation_levels

    top = max(float(ex.codes.max_activation[3]), 1e-6)
    expected = np.asarray(ACTIVATION_PALETTE)[activation_levels(activation, top)]
    assert brush.point_colors == expected.tolist()
    stats = unit_stats(ex.codes, digits.labels)
    np.testing.assert_array_equal(dashboard.table.stats.frequency, stats.frequency)
    assert dashboard.inspector.summary == ex.unit_summary(3, top_n=dashboard.inspector.top_n)
    heat = dashboard.heatmap.data
    np.testing.assert_array_equal(heat.matrix, ex.codes.dense(heat.rows, heat.units))
    probe = dashboard.probe
    fresh = ex.probe(probe.probed_samples()[0], probe.result.attribute)
    np.testing.assert_allclose(probe.result.response, fresh.response, atol=1e-6)


def test_refresh_notifies_the_revision_once(sae, digits):
    ex = sw.Explorer(sae, digits)
    ex.selection.unit = 2
    observer = Mock()
    ex.selection.observe(observer, names=All)
    ex.refresh()
    assert [c.args[0]["name"] for c in observer.call_args_list] == ["revision"]
    assert ex.selection.revision == 1 and ex.selection.unit == 2  # still a unit of the SAE
    with pytest.raises(AttributeError):
        ex.selection.revision = 5  # read-only: only refresh moves it


def test_a_refit_with_fewer_units_follows_into_the_selection_and_the_views(sae, digits):
    ex = sw.Explorer(sae, digits)
    dashboard = ex.dashboard()
    ex.selection.unit = 13
    observer = Mock()
    ex.selection.observe(observer, names=All)
    fit(sae.set_params(n_units=8), digits.X)
    ex.refresh()
    # The view's data first, then the cleared unit (views redraw before they see it).
    assert [c.args[0]["name"] for c in observer.call_args_list] == ["revision", "unit"]
    assert ex.n_units == ex.selection.n_units == 8 and ex.selection.unit is None
    assert dashboard.status.value == "<b>0 samples selected · unit none</b>"
    assert dashboard.inspector.picker.max == 7 and dashboard.inspector.picker.value == -1
    assert len(dashboard.table.order) == 8
    # An out-of-range unit: a ValueError naming unit, and nothing changes.
    with pytest.raises(ValueError, match=r"unit must be in \[0, 8\); got 13"):
        ex.unit_direction(13)
    with pytest.raises(ValueError, match=r"unit must be None or an int in \[0, 8\)"):
        ex.selection.unit = 13
    assert ex.selection.unit is None and "unit none" in dashboard.status.value
    ex.selection.unit = 7  # a unit of the refit SAE reaches every view
    assert dashboard.inspector.summary.unit == 7 and 7 in dashboard.heatmap.data.units
    assert 7 in dashboard.probe.shown_units


def test_a_refit_with_more_units_widens_the_range(sae, digits):
    ex = sw.Explorer(sae, digits)
    inspector = sw.UnitInspector(ex, unit=5)
    fit(sae.set_params(n_units=24), digits.X)
    ex.refresh()
    assert ex.selection.unit == 5 and inspector.picker.max == 23
    ex.selection.unit = 20
    assert inspector.summary.unit == 20 and inspector.picker.value == 20


def test_a_refit_without_refresh_says_to_refresh(sae, digits):
    ex = sw.Explorer(sae, digits)
    ex.unit_summary(1)  # codes cached for 16 units
    fit(sae.set_params(n_units=8), digits.X)
    for query in (lambda: ex.reconstruct([0]), lambda: ex.probe(0, "rotation")):
        with pytest.raises(ValueError, match=r"call ex\.refresh\(\)"):
            query()
    ex = sw.Explorer(fit(sae.set_params(n_units=16), digits.X), digits)  # nothing cached
    fit(sae.set_params(n_units=8), digits.X)
    with pytest.raises(ValueError, match="sae now has 8 units but this Explorer was built"):
        ex.unit_direction(1)


def test_a_refit_on_inputs_of_another_width_asks_for_a_new_explorer(sae, digits):
    ex = sw.Explorer(sae, digits)
    ex.selection.unit = 4
    fit(sae, digits.X[:, :10])
    with pytest.raises(ValueError, match="build a new Explorer"):
        ex.refresh()
    assert ex.n_units == 16 and ex.selection.unit == 4 and ex.selection.revision == 0


def test_webgl_points_move_with_a_refresh():
    ds = sw.datasets.superposition(n=3500, n_features=12, dim=10, active=2.0, seed=2)
    sae = fit(sw.SAE(n_units=16, k=3, epochs=1, batch_size=256, seed=0), ds.X)
    ex = sw.Explorer(sae, ds)
    view = sw.PCABrush(ex, max_points=1000)
    assert view.webgl
    train_more(sae, ds.X)
    ex.refresh()
    assert np.array_equal(view.shown, ex.display_samples(1000))
    plot = view.scatter.plot
    np.testing.assert_allclose(plot._x, ex.projection().coords[view.shown, 0], atol=1e-5)
    np.testing.assert_allclose(plot._y, ex.projection().coords[view.shown, 1], atol=1e-5)


def test_prefix_slider_follows_a_refit_with_fewer_units(sae, digits):
    ex = sw.Explorer(sae, digits)
    view = sw.PrefixSlider(ex)
    assert view.slider.value == 16
    fit(sae.set_params(n_units=8), digits.X)
    ex.refresh()
    assert view.slider.max == 8 and view.slider.value == 8 and max(view.grid) == 8
    assert "first 8 of 8 units" in view.info.value
    np.testing.assert_allclose(view.curve.y, ex.prefix_metrics(view.grid).fvu, rtol=1e-6)
