"""Each Explorer view on its own, headless: Selection -> marks (state -> view) and simulated
clicks/brushes -> Selection (view -> state), with values checked against brute force."""

from __future__ import annotations

import io
from typing import Any

import ipywidgets as widgets
import numpy as np
import PIL.Image
import pytest
import torch

import sae_widgets as sw
from sae_widgets.widgets._render import decode_png, diverging_rgb, sequential_rgb

# bqscales (bqplot's scales) emits a traitlets DeprecationWarning when first imported;
# pyproject's filter list does not name that module yet, so bqplot is imported in tests only.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


def small_fit(sae, X):
    """Fit on one thread: a 48-unit SAE gains nothing from more, and the CI box is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return sae.fit(X, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits_sae():
    ds = sw.datasets.digits()
    sae = sw.SAE(n_units=48, k=6, epochs=10, batch_size=128, min_steps_per_epoch=8, seed=0)
    small_fit(sae, ds.X)  # 150 steps
    return ds, sae, np.asarray(sae.transform(ds.X))  # dense codes: the brute-force reference


@pytest.fixture
def ex(digits_sae):
    ds, sae, _ = digits_sae
    return sw.Explorer(sae, ds)  # a fresh Selection per test


@pytest.fixture
def codes(digits_sae):
    return digits_sae[2]


def image_click(x, y):
    """The message bqplot's Image mark sends on a click, in data coordinates."""
    return {"event": "element_click", "data": {"click_x": x, "click_y": y}}


# ---- UnitInspector -------------------------------------------------------------------------


def test_inspector_draws_the_focused_units_data(ex, digits_sae, codes):
    _, sae, _ = digits_sae
    inspector = sw.UnitInspector(ex)
    unit = int(np.argsort(-np.count_nonzero(codes, axis=0))[3])
    ex.selection.unit = unit
    column = codes[:, unit]
    fired = column[column != 0]

    assert inspector.picker.value == unit and inspector.summary.unit == unit
    # Histogram: the non-zero activations, recounted by numpy.
    counts, edges = np.histogram(fired, bins=32, range=(min(0.0, fired.min()), fired.max()))
    np.testing.assert_array_equal(inspector.histogram.y, counts)
    np.testing.assert_allclose(inspector.histogram.x, (edges[:-1] + edges[1:]) / 2, rtol=1e-5)
    # Top samples: the largest activations, strongest first, captioned with their values.
    top = np.argsort(-column, kind="stable")[:16]
    np.testing.assert_allclose(column[inspector.gallery.samples], column[top], rtol=1e-5)
    assert list(inspector.gallery.captions.text) == [f"{v:.2f}" for v in column[top]]
    # Decoder direction as a zero-centred picture of the 8x8 pixels.
    decoder = sae.components_[unit].reshape(8, 8)
    picture = decode_png(inspector.directions.mark.image.value)[:, :8]  # left of the pair
    np.testing.assert_array_equal(picture, diverging_rgb(decoder))
    # Nearest units by decoder cosine.
    directions = sae.components_ / np.linalg.norm(sae.components_, axis=1, keepdims=True)
    cosines = directions @ directions[unit]
    cosines[unit] = -np.inf
    assert inspector.nearest.units == np.argsort(-cosines, kind="stable")[:8].tolist()
    assert f"fires on {fired.size:,} of 1,797" in inspector.stats.value
    # Label shares of the firing samples.
    labels = ex.dataset.labels[column != 0]
    shares = np.bincount(labels, minlength=10) / labels.size
    np.testing.assert_allclose(inspector.label_bars.y, shares, rtol=1e-5)
    y_scale = inspector.label_bars.scales["y"]  # a fixed domain: no axis redraw per unit
    assert (y_scale.min, y_scale.max) == (0.0, 1.0)


def test_inspector_controls_set_the_selection(ex):
    inspector = sw.UnitInspector(ex, unit=4)
    assert ex.selection.unit == 4
    inspector.picker.value = 9
    assert ex.selection.unit == 9
    nearest = inspector.nearest.units[0]
    inspector.nearest.click(0)
    assert ex.selection.unit == nearest
    assert inspector.summary.unit == nearest  # and the buttons now list its neighbours
    cofiring = inspector.cofiring.units[1]
    inspector.cofiring.click(1)
    assert ex.selection.unit == cofiring
    # A click on the second thumbnail (8x8 images, 9 px per cell) picks that sample.
    gallery = inspector.gallery
    gallery._clicked(gallery.mark, image_click(9 + 4, float(gallery.y_scale.max) - 2))
    assert ex.selection.probe_sample == gallery.samples[1]


def test_inspector_hides_the_last_units_panels_when_the_unit_is_cleared(ex):
    inspector = sw.UnitInspector(ex, unit=4)
    details = inspector.children[2:]  # everything under the picker, stats and dead-unit note
    ex.selection.clear()  # from Python: no unit is focused any more
    assert inspector.summary is None and "no unit focused" in inspector.stats.value
    assert [part.layout.display for part in details] == ["none", "none"]
    assert inspector.dead_note.layout.display == "none"
    assert inspector.nearest.units == [] and inspector.cofiring.units == []
    assert inspector.picker.value == -1  # no stale number left in the box
    inspector.picker.value = 4  # retyping the unit focused before the clear focuses it again
    assert ex.selection.unit == 4 and inspector.summary.unit == 4
    inspector.picker.value = -1  # and -1 clears the focus from the box
    assert ex.selection.unit is None
    ex.selection.unit = 6
    assert inspector.summary.unit == 6 and inspector.picker.value == 6
    assert [part.layout.display for part in details] == [None, None]
    assert len(inspector.nearest.units) > 0


def test_inspector_says_a_dead_unit_is_dead_instead_of_drawing_empty_panels(ex, codes):
    inspector = sw.UnitInspector(ex, unit=0)
    assert inspector.dead_note.layout.display == "none"
    dead = np.flatnonzero(np.count_nonzero(codes, axis=0) == 0)
    assert len(dead)  # the fixture SAE (48 units, k=6, 150 steps) leaves unit 2 dead
    ex.selection.unit = int(dead[0])
    assert inspector.dead_note.layout.display is None
    assert f"unit {dead[0]} is dead" in inspector.dead_note.value
    assert inspector.gallery.figure.layout.display == "none"
    assert inspector.histogram_figure.layout.display == "none"
    ex.selection.unit = int(np.argmax(np.count_nonzero(codes, axis=0)))
    assert inspector.dead_note.layout.display == "none"
    assert inspector.gallery.figure.layout.display is None


def test_inspector_without_images_draws_bars_and_rows():
    ds = sw.datasets.superposition(n=600, n_features=20, dim=10, active=2.0, seed=1)
    sae = small_fit(sw.SAE(n_units=16, k=3, epochs=2, batch_size=64, seed=0), ds.X)
    ex = sw.Explorer(sae, ds)
    inspector = sw.UnitInspector(ex, unit=2, n_dims=5)
    decoder = sae.components_[2]
    dims = np.argsort(-np.abs(decoder), kind="stable")[:5]
    decoder_bars, encoder_bars = inspector.directions.pair
    assert list(decoder_bars.x) == list(encoder_bars.x) == [str(d) for d in dims]
    np.testing.assert_allclose(decoder_bars.y, decoder[dims] / np.linalg.norm(decoder), rtol=1e-5)
    encoder = sae.model_.W_enc.detach().numpy()[:, 2]
    np.testing.assert_allclose(encoder_bars.y, encoder[dims] / np.linalg.norm(encoder), rtol=1e-5)
    # 12 classes at most in the label chart: the most frequent among the firing samples, in
    # fixed slots named by the axis (the browser's scale domain stays put between units).
    assert list(inspector.label_bars.x) == [str(i) for i in range(12)]
    assert np.all(np.diff(inspector.label_bars.y) <= 0)
    names = inspector._label_axis.tick_labels
    labels = ds.labels[np.asarray(ex.codes.unit_samples(2)[0])]
    counts = np.bincount(labels, minlength=len(ds.label_names))
    assert names == {
        str(i): ds.label_names[c] for i, c in enumerate(np.argsort(-counts, kind="stable")[:12])
    }
    # Top samples as rows of their input values on those dimensions.
    gallery = inspector.gallery
    rows = ds.X[gallery.samples][:, dims]
    np.testing.assert_array_equal(decode_png(gallery.mark.image.value), diverging_rgb(rows))
    assert gallery.sample_at(0.0, len(gallery.samples) - 1.0) == gallery.samples[0]


# ---- PCABrush ------------------------------------------------------------------------------


def brush(view, x_range, y_range):
    """A user's drag on the real BrushSelector: press, move, release."""
    view.brush.brushing = True
    view.brush.selected_x = [x_range[0], (x_range[0] + x_range[1]) / 2]
    view.brush.selected_y = list(y_range)
    view.brush.selected_x = list(x_range)
    view.brush.brushing = False


def test_brush_release_selects_every_point_in_the_box(ex):
    from bqplot import Scatter

    view = sw.PCABrush(ex)
    assert isinstance(view.scatter, Scatter) and not view.webgl
    view.select_with.value = "rectangle"  # the user's choice; the brush is wired either way
    assert view.figure.interaction is view.brush
    x, y = np.asarray(view.scatter.x), np.asarray(view.scatter.y)
    assert len(x) == ex.n_samples
    x_range = (np.percentile(x, 20), np.percentile(x, 70))
    y_range = (np.percentile(y, 60), np.percentile(y, 10))  # reversed, as a drag may give
    view.brush.brushing = True
    view.brush.selected_x, view.brush.selected_y = list(x_range), list(y_range)
    assert ex.selection.samples == []  # nothing happens while dragging
    view.brush.brushing = False

    inside = (x >= x_range[0]) & (x <= x_range[1]) & (y >= y_range[1]) & (y <= y_range[0])
    assert ex.selection.samples == np.flatnonzero(inside).tolist()
    assert view.count.value == f"<b>{inside.sum():,}</b> samples selected"
    assert view.enriched.units == ex.enrichment(ex.selection.samples, top=8).units.tolist()
    np.testing.assert_array_equal(view.scatter.selected, np.flatnonzero(inside))
    enriched = view.enriched.units[0]
    view.enriched.click(0)
    assert ex.selection.unit == enriched
    view.clear_button.click()
    assert ex.selection.samples == [] and view.brush.selected_x is None


def from_browser(widget, **state):
    """A state update delivered the way the browser sends it (through the widget's comm)."""
    message = {"method": "update", "state": state, "buffer_paths": []}
    widget._handle_msg({"content": {"data": message}, "buffers": []})


def test_lasso_is_the_default_and_selects_the_points_the_browser_marked(ex, monkeypatch):
    view = sw.PCABrush(ex)
    assert view.select_with.value == "lasso" and view.figure.interaction is view.lasso
    # The lasso marks an invisible copy of the points, never the visible scatter.
    target = view.lasso_target
    assert target is not view.scatter and target in view.figure.marks
    assert view.lasso.marks == [target] and list(target.opacities) == [0.0]
    np.testing.assert_array_equal(target.x, view.scatter.x)
    np.testing.assert_array_equal(target.y, view.scatter.y)
    sent = []
    monkeypatch.setattr(view.lasso, "send", sent.append)

    from_browser(target, selected=[40, 3, 17])
    assert ex.selection.samples == [3, 17, 40]
    assert view.count.value == "<b>3</b> samples selected"
    np.testing.assert_array_equal(view.scatter.selected, [3, 17, 40])
    # Reset after each lasso, so the next one replaces this selection instead of adding to it;
    # what the browser reports after the reset (nothing marked) leaves the selection alone.
    assert sent == [{"type": "reset"}]
    from_browser(target, selected=[])
    assert ex.selection.samples == [3, 17, 40]
    from_browser(target, selected=[5, 3])
    assert ex.selection.samples == [3, 5] and len(sent) == 2
    # A selection made elsewhere is drawn on the scatter and does not feed back.
    ex.selection.samples = [5, 6]
    np.testing.assert_array_equal(view.scatter.selected, [5, 6])
    assert ex.selection.samples == [5, 6]
    view.clear_button.click()
    assert ex.selection.samples == [] and view.scatter.selected is None


def test_selection_tools_switch_and_add_subtract_and_undo(ex):
    view = sw.PCABrush(ex, select_with="rectangle")
    assert view.figure.interaction is view.brush
    view.select_with.value = "lasso"
    assert view.figure.interaction is view.lasso
    with pytest.raises(ValueError, match="select_with"):
        sw.PCABrush(ex, select_with="polygon")
    target = view.lasso_target
    from_browser(target, selected=[1, 2, 3])
    view.mode.value = "add"
    from_browser(target, selected=[7])
    assert ex.selection.samples == [1, 2, 3, 7]
    view.mode.value = "subtract"
    from_browser(target, selected=[2, 3])
    assert ex.selection.samples == [1, 7]
    assert not view.undo_button.disabled
    view.undo_button.click()
    assert ex.selection.samples == [1, 2, 3, 7]
    assert view.count.value == "<b>4</b> samples selected"


def test_brush_colours_by_label_or_by_the_focused_units_activation(ex, codes):
    from sae_widgets.widgets._render import ACTIVATION_PALETTE, CATEGORY10

    view = sw.PCABrush(ex)
    # One colour per point, sent as one list (no colour scale to fall out of step with it).
    assert view.scatter.color is None
    assert list(view.scatter.colors) == [CATEGORY10[label] for label in ex.dataset.labels]
    assert "label" in view.legend.value and CATEGORY10[3] in view.legend.value
    view.color_by.value = "activation"
    for unit in (5, 6, 5):
        ex.selection.unit = unit
        column = codes[:, unit]
        levels = np.rint(np.clip(column / column.max(), 0, 1) * 255).astype(int)
        expected = [ACTIVATION_PALETTE[level] for level in levels]
        assert list(view.scatter.colors) == expected == view.point_colors
        assert f"unit {unit} activation" in view.legend.value
    assert view.scatter.colors[int(np.argmax(codes[:, 5]))] == ACTIVATION_PALETTE[-1]


def test_hovering_a_point_shows_its_card(ex, codes):
    view = sw.PCABrush(ex)
    assert view.scatter.tooltip is view.hover
    # The relay that lets points be hovered under the selector sits inside the view.
    assert view.hover_relay in view.children and view.hover_relay.view_selector == ".sw-pca"
    ex.selection.unit = 4
    sample = int(np.argmax(codes[:, 4]))
    from_browser(view.scatter, hovered_point=sample)
    card = view.hover.value
    assert f"sample {sample}" in card and f"label <b>{ex.dataset.labels[sample]}</b>" in card
    assert f"unit 4: <b>{codes[sample, 4]:.3g}</b>" in card and "data:image/png" in card


def outline_from_browser(widget, outline):
    """What jupyter-scatter sends at the end of a lasso or rectangle: its outline in data
    coordinates, as a binary float32 array (after the enclosed drawn points)."""
    outline = np.ascontiguousarray(outline, dtype=np.float32)
    state = {"view": memoryview(outline), "dtype": "float32", "shape": list(outline.shape)}
    from_browser(widget, lasso_selection_polygon=state)


def test_large_projection_uses_webgl_and_its_selection_reaches_the_selection():
    from sae_widgets.widgets._gl_scatter import GLScatter

    ds = sw.datasets.superposition(n=4000, n_features=12, dim=10, active=2.0, seed=2)
    sae = small_fit(sw.SAE(n_units=16, k=3, epochs=1, batch_size=256, seed=0), ds.X)
    ex = sw.Explorer(sae, ds)
    view = sw.PCABrush(ex)
    assert view.webgl and isinstance(view.scatter, GLScatter)
    assert view.shown.tolist() == list(range(4000))  # fewer than max_points: all drawn
    widget = view.scatter.widget
    assert view.figure is widget and widget.mouse_mode == "lasso"
    coords = ex.projection().coords
    # A lasso: the browser sends the drawn points it enclosed, then the outline; the outline
    # decides, over every sample.
    (x0, y0), (x1, y1) = np.percentile(coords, 30, axis=0), np.percentile(coords, 70, axis=0)
    triangle = np.array([[x0, y0], [x1, y0], [x0, y1]])
    inside = ex.samples_in_polygon(triangle)
    assert 50 < len(inside) < 4000
    widget.selection = inside[:3].astype(np.uint32)
    assert ex.selection.samples == []  # the points alone wait for the outline
    outline_from_browser(widget, triangle)
    assert ex.selection.samples == inside.tolist()
    # A click selects one drawn point (no outline follows); "add" keeps the rest.
    view.mode.value = "add"
    outside = int(np.setdiff1d(np.arange(4000), inside)[0])
    widget.selection = np.array([outside], dtype=np.uint32)
    assert ex.selection.samples == sorted([*inside.tolist(), outside])
    # Selected from Python: shown, and the browser's echo of it is not a new lasso.
    ex.selection.samples = [1, 2]
    np.testing.assert_array_equal(widget.selection, [1, 2])
    assert ex.selection.samples == [1, 2]
    view.select_with.value = "rectangle"
    assert widget.lasso_type == "rectangle"
    view.color_by.value = "activation"
    ex.selection.unit = 3
    assert len(view.point_colors) == 4000
    # Hovering a point (jupyter-scatter reports its index) fills the card under the plot.
    assert view.hover in view.children and view.hover_relay is None
    from_browser(widget, hovering=2500)
    assert "sample 2500" in view.hover.value and "unit 3:" in view.hover.value


def test_webgl_scatter_draws_a_bounded_subset_and_selects_over_every_sample():
    ds = sw.datasets.superposition(n=6000, n_features=12, dim=10, active=2.0, seed=2)
    sae = small_fit(sw.SAE(n_units=16, k=3, epochs=1, batch_size=256, seed=0), ds.X)
    ex = sw.Explorer(sae, ds)
    view = sw.PCABrush(ex, max_points=1000, color_by="activation")
    shown = view.shown
    assert len(shown) == 1000 and np.array_equal(shown, ex.display_samples(1000))
    widget = view.scatter.widget
    coords = ex.projection().coords
    assert np.asarray(widget.points).shape[0] == 1000  # only the drawn points are sent
    ex.selection.unit = 5
    assert len(view.point_colors) == 1000  # one colour per drawn point is what is sent
    # A rectangle's outline selects every sample inside, drawn or not.
    (x0, y0), (x1, y1) = np.percentile(coords, 20, axis=0), np.percentile(coords, 80, axis=0)
    view.select_with.value = "rectangle"
    outline_from_browser(widget, [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    expected = ex.samples_in_rect((x0, x1), (y0, y1))
    assert ex.selection.samples == expected.tolist() and len(expected) > 1000
    # The scatter shows the drawn ones among them, by position among the drawn points.
    drawn = np.flatnonzero(np.isin(shown, expected))
    np.testing.assert_array_equal(np.sort(np.asarray(widget.selection)), drawn)
    # A click on a drawn point selects that sample (its position maps through `shown`).
    widget.selection = np.array([7], dtype=np.uint32)
    assert ex.selection.samples == [int(shown[7])]
    ex.history.undo()
    assert ex.selection.samples == expected.tolist()


def test_webgl_frames_wait_until_the_other_views_are_sent(monkeypatch):
    """RendererFit: the browser holds the scatter's frames from the kernel's "hold" (before new
    colours) or a release on the plot (a lasso) until its "release", which follows every other
    view's update of that change, so a software WebGL frame never delays them."""
    ds = sw.datasets.superposition(n=4000, n_features=12, dim=10, active=2.0, seed=2)
    sae = small_fit(sw.SAE(n_units=16, k=3, epochs=1, batch_size=256, seed=0), ds.X)
    ex = sw.Explorer(sae, ds)
    dashboard = ex.dashboard()
    brush = dashboard.brush
    fit, plot = brush.scatter.fit, brush.scatter.widget
    brush.color_by.value = "activation"
    sent: list[tuple[Any, dict]] = []
    original = widgets.Widget._send

    def record(self, msg, buffers=None):
        sent.append((self, msg))
        return original(self, msg, buffers)

    monkeypatch.setattr(widgets.Widget, "_send", record)

    def frames() -> list[tuple[int, str]]:
        return [
            (i, msg["content"]["frames"])
            for i, (widget, msg) in enumerate(sent)
            if widget is fit.view_state and msg.get("method") == "custom"
        ]

    # A unit change: hold, the new colours, every other view, then release (last).
    ex.selection.unit = 3 if ex.selection.unit != 3 else 4
    points = [i for i, (w, m) in enumerate(sent) if w is plot and "points" in m["state"]]
    assert [f for _, f in frames()] == ["hold", "release"] and len(points) == 1
    (hold, _), (release, _) = frames()
    assert hold < points[0] and release == len(sent) - 1
    # the views followed after the PCA plot (unit table, heatmap) updated in between
    assert dashboard.table.table in [w for w, _ in sent[points[0] + 1 : release]]
    assert not fit.holding
    # A lasso: the browser holds since the release on the plot; the kernel releases after
    # the views' updates (nothing else to hold for), once.
    sent.clear()
    coords = ex.projection().coords
    (x0, y0), (x1, y1) = np.percentile(coords, 30, axis=0), np.percentile(coords, 70, axis=0)
    outline_from_browser(plot, [[x0, y0], [x1, y0], [x0, y1]])
    assert ex.selection.samples and [f for _, f in frames()] == ["release"]
    assert frames()[0][0] == len(sent) - 1
    # Another outline around the same samples changes no view: still one release.
    sent.clear()
    selected = list(ex.selection.samples)
    outline_from_browser(plot, [[x0, y0], [x1 + 1e-4, y0], [x0, y1]])
    assert ex.selection.samples == selected and [f for _, f in frames()] == ["release"]
    dashboard.close()


# ---- ActivationHeatmap ---------------------------------------------------------------------


def test_heatmap_rows_follow_the_selection_and_columns_rank_enrichment(ex, codes):
    view = sw.ActivationHeatmap(ex, max_rows=100, max_units=20)
    assert view.data.matrix.shape == (100, 20)
    chosen = list(range(0, 1797, 30))
    ex.selection.samples = chosen
    data = view.data
    assert sorted(data.rows.tolist()) == chosen
    ranked = ex.enrichment(chosen, top=20).units  # less the units that fire on no row
    assert data.units.tolist() == [u for u in ranked.tolist() if codes[chosen, u].any()]
    np.testing.assert_allclose(data.matrix, codes[np.ix_(data.rows, data.units)], atol=1e-6)
    # The PNG is that matrix, each column scaled by its unit's maximum over the dataset.
    expected = sequential_rgb(data.matrix / codes[:, data.units].max(axis=0), vmax=1.0)
    np.testing.assert_array_equal(decode_png(view.matrix_mark.image.value), expected)
    # Silent cells are transparent (the page's background shows, light or dark theme).
    with PIL.Image.open(io.BytesIO(view.matrix_mark.image.value)) as picture:
        alpha = np.asarray(picture)[..., 3]
    np.testing.assert_array_equal(alpha == 0, data.matrix == 0)
    assert f"{len(chosen)} of {len(chosen)} selected samples" in view.caption.value


def test_heatmap_clicks_focus_a_unit_and_pick_a_sample(ex, codes):
    view = sw.ActivationHeatmap(ex, max_units=10)
    n_rows = len(view.data.rows)
    view._clicked_matrix(view.matrix_mark, image_click(3.4, n_rows - 0.5))
    assert ex.selection.unit == view.data.units[3]
    np.testing.assert_array_equal(view.focus_box.x, [3, 4, 4, 3, 3])
    view._clicked_strip(view.strip_mark, image_click(-1.0, n_rows - 2.5))  # the third row
    sample = int(view.data.rows[2])
    assert ex.selection.probe_sample == sample
    np.testing.assert_array_equal(view.row_box.y, np.array([0, 0, 1, 1, 0]) + n_rows - 3)
    # The sample card: that sample's most active units, strongest first.
    active = np.flatnonzero(codes[sample])
    strongest = active[np.argsort(-codes[sample, active], kind="stable")]
    assert view.card_units.units == strongest[:8].tolist()
    assert f"sample {sample}" in view.card_title.value


def test_heatmap_shows_a_focused_unit_that_is_not_among_its_columns(ex, codes):
    view = sw.ActivationHeatmap(ex, max_units=8)
    chosen = view.data.units.copy()
    assert len(chosen) == 8
    outside = int(np.setdiff1d(np.arange(ex.n_units), chosen)[0])
    ex.selection.unit = outside
    # It takes the last column (max_units still holds), outlined, named in the caption.
    units = view.data.units
    assert len(units) == 8 and units[-1] == outside
    np.testing.assert_array_equal(units[:7], chosen[:7])
    np.testing.assert_array_equal(view.data.matrix, codes[np.ix_(view.data.rows, units)])
    assert view.focus_box.visible
    np.testing.assert_array_equal(view.focus_box.x, [7, 8, 8, 7, 7])
    assert f"the focused unit {outside}" in view.caption.value
    assert view.x_axis.tick_labels[str(7.5)] == str(outside)
    # Clicking it keeps it; focusing a chosen unit gives its column back.
    view._clicked_matrix(view.matrix_mark, image_click(7.5, 0.5))
    assert ex.selection.unit == outside
    ex.selection.unit = int(chosen[2])
    np.testing.assert_array_equal(view.data.units, chosen)
    np.testing.assert_array_equal(view.focus_box.x, [2, 3, 3, 2, 2])
    assert "focused unit" not in view.caption.value
    # New rows choose their own columns; the focused unit stays one of them.
    ex.selection.unit = outside
    for rows in (list(range(40)), list(range(900, 1000))):
        ex.selection.samples = rows
        assert outside in view.data.units and len(view.data.units) <= 8
        assert view.focus_box.visible


# ---- ProbeSlider ---------------------------------------------------------------------------


def test_slider_moves_marker_and_bars_without_recomputing_the_sweep(ex, monkeypatch):
    calls = []
    real_probe = ex.probe

    def counting_probe(*args, **kwargs):
        calls.append(args)
        return real_probe(*args, **kwargs)

    monkeypatch.setattr(ex, "probe", counting_probe)
    ex.selection.probe_sample = 11
    view = sw.ProbeSlider(ex, attribute="rotation")
    assert len(calls) == 1 and calls[0][:2] == (11, "rotation")
    result = view.result
    reference = real_probe(11, "rotation")
    np.testing.assert_allclose(result.response, reference.response, atol=1e-6)
    assert view.shown_units.tolist() == reference.ranked_units[:8].tolist()

    for k in (0, 3, len(result.values) - 1):
        value = float(result.values[k])
        view.slider.value = value
        assert ex.selection.probe_value == value
        np.testing.assert_allclose(view.bars.y, result.response[k, view.shown_units])
        np.testing.assert_array_equal(view.rule.x, [value, value])
        np.testing.assert_allclose(view.dots.y, result.response[k, view.shown_units])
    assert len(calls) == 1  # the slider never recomputes the sweep

    view.attribute.value = "scale"
    assert ex.selection.probe_attribute == "scale" and len(calls) == 2
    view.attribute.value = "rotation"
    assert len(calls) == 2  # cached per (sample, attribute)
    ex.selection.probe_sample = 12
    assert len(calls) == 3 and calls[-1][:2] == (12, "rotation")


def test_probe_marks_the_focused_unit_and_clicks_focus_units(ex):
    view = sw.ProbeSlider(ex, attribute="thickness")
    outsider = int(np.setdiff1d(np.arange(ex.n_units), view.shown_units)[0])
    ex.selection.unit = outsider
    assert view.shown_units[-1] == outsider
    # One line per shown unit in one mark; the focused unit's again, thick, on top.
    np.testing.assert_allclose(view.curves.y, view.result.response[:, view.shown_units].T)
    np.testing.assert_allclose(view.focus_curve.y, view.result.response[:, outsider])
    assert view.focus_curve.visible and view.focus_curve.stroke_width > view.curves.stroke_width
    third, first = view.shown_units[2], view.shown_units[0]
    view._clicked_bar(view.bars, {"event": "element_click", "data": {"index": 2}})
    assert ex.selection.unit == third
    view.click_curve(0)
    assert ex.selection.unit == first
    # A click on a line of the curves mark: bqplot sends the line's datum, its index in it.
    view.curves._handle_custom_msg({"event": "element_click", "data": {"index": 2}}, [])
    assert ex.selection.unit == third


def test_probe_averages_over_the_selection(ex):
    view = sw.ProbeSlider(ex, attribute="shift_x", max_average=16)
    ex.selection.samples = list(range(100))
    view.average.value = True
    assert len(view.result.samples) == 16
    assert set(view.result.samples.tolist()) <= set(range(100))
    # The cap is said, with the parameter that changes it.
    assert "a random <b>16</b> of the <b>100</b>" in view.sample_text.value
    assert "max_average=16" in view.sample_text.value
    ex.selection.samples = list(range(10))
    assert "mean over <b>10</b> selected samples" in view.sample_text.value
    reference = ex.probe(view.result.samples.tolist(), "shift_x")
    np.testing.assert_allclose(view.result.response, reference.response, atol=1e-6)


# ---- "working..." ---------------------------------------------------------------------------


def test_working_note_shows_only_while_a_slow_redraw_runs(ex):
    import time

    from sae_widgets.widgets._busy import Busy

    view = sw.PCABrush(ex)
    assert any(view.busy.widget in getattr(row, "children", ()) for row in view.children)
    seen: list[str] = []

    def slow(_change):  # the first redraw lasts until the note shows (60 s: then it failed)
        deadline = time.monotonic() + 60
        while not seen and "working..." not in view.busy.widget.value:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        seen.append(view.busy.widget.value)

    view.busy.delay_s = 0.01
    view.follow(slow, "unit")
    ex.selection.unit = 5
    assert "working..." in seen[-1]  # shown while the slow redraw ran
    assert view.busy.widget.value == "" and view.busy.shown_count == 1
    # A quick redraw never shows it.
    view.busy.delay_s = 5.0
    ex.selection.unit = 6
    assert view.busy.widget.value == "" and view.busy.shown_count == 1
    with pytest.raises(ValueError, match="delay_s"):
        Busy(delay_s=-1)


def test_model_activations_of_images_show_the_input_pictures():
    ds = sw.datasets.digits()
    model = sw.datasets.digits_mlp(steps=30)
    acts = sw.collect_activations(model, layer="net.0", data=ds)
    # The mapped attribute keeps the un-mapped one, aligned through subsets.
    sub = acts[np.arange(10, 50)]
    source = sub.attributes["rotation"].input_attribute
    assert source is not None
    np.testing.assert_allclose(source.apply([0], 0.0)[0], ds.X[10], atol=1e-5)
    sae = small_fit(sw.SAE(n_units=32, k=4, epochs=1, batch_size=256, seed=0), acts.X)
    ex = sw.Explorer(sae, acts)
    dashboard = ex.dashboard(attribute="rotation")
    ex.selection.probe_sample = 3
    assert "sw-input-picture" in dashboard.heatmap.card_input.value
    assert "input, rotation" in dashboard.probe.varied_input.value
    before = dashboard.probe.varied_input.value
    dashboard.probe.slider.value = 45.0
    assert dashboard.probe.varied_input.value != before


# ---- polish: export, count axes ------------------------------------------------------------


def test_selection_exports_as_a_csv_download(ex):
    import base64
    import re

    view = sw.PCABrush(ex)
    view.export_csv()
    assert "nothing selected" in view.export_link.value
    ex.selection.samples = [3, 7]
    view.export_button.click()
    encoded = re.search(r"base64,([^\"]+)", view.export_link.value)
    assert encoded is not None and "(2 rows)" in view.export_link.value
    labels = ex.dataset.labels
    assert base64.b64decode(encoded[1]).decode().splitlines() == [
        "sample,label,label_name",
        f"3,{labels[3]},{ex.dataset.label_names[labels[3]]}",
        f"7,{labels[7]},{ex.dataset.label_names[labels[7]]}",
    ]
    ex.selection.samples = [1]  # another selection: the old link goes
    assert view.export_link.value == ""


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ('=HYPERLINK("http://x")', '"\'=HYPERLINK(""http://x"")"'),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("+cmd", "'+cmd"),
        ("-x", "'-x"),
        ("-1", "-1"),
        ("+2.5e3", "+2.5e3"),
        ("cat, dog", '"cat, dog"'),
        ("plain", "plain"),
    ],
)
def test_csv_fields_never_start_a_spreadsheet_formula(name, field):
    """A label name a spreadsheet would run as a formula gets a leading apostrophe (CSV
    injection); numbers and other text are written as they are."""
    from sae_widgets.widgets._export import csv_field

    assert csv_field(name) == field


def test_count_axes_tick_whole_numbers():
    from sae_widgets.widgets.unit_inspector import integer_ticks

    for top in (0.0, 1.0, 3.0, 7.0, 12.0, 980.0, 123_456.0):
        ticks = integer_ticks(top)
        assert ticks[0] == 0 and np.all(ticks == np.round(ticks)) and 2 <= len(ticks) <= 7
        step = ticks[1] - ticks[0]
        assert ticks[-1] + step / 2 >= max(top, 1.0) and ticks[-1] <= max(top, 1.0) + step


def test_inspector_histogram_counts_have_integer_ticks(ex):
    inspector = sw.UnitInspector(ex, unit=3)
    ticks = np.asarray(inspector.histogram_figure.axes[1].tick_values)
    assert len(ticks) >= 2 and np.all(ticks == np.round(ticks))
    assert ticks[-1] >= ex.unit_summary(3).histogram_counts.max() * 0.5
