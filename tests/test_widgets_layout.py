"""How the views look, headless: the dashboard's layout, the CSS hooks browser tests use, and
the details a screenshot showed wrong once (truncated toggle labels, titles over pictures,
a heatmap picture narrower than its axis, a legend over the curves, axes without a format)."""

from __future__ import annotations

from collections.abc import Iterator

import ipywidgets
import numpy as np
import pytest
from bqplot import Axis, Figure, Image, LinearScale, Mark, OrdinalScale

import sae_widgets as sw
from sae_widgets.analysis import HeatmapData
from sae_widgets.analysis.selection import firing_columns
from sae_widgets.widgets._render import decode_png
from sae_widgets.widgets._view import TITLE_ROOM, set_ticks, text_width

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


@pytest.fixture
def ex(digits_sae):
    return sw.Explorer(*digits_sae)


@pytest.fixture
def dashboard(ex):
    return ex.dashboard(attribute="rotation")


def walk(widget: ipywidgets.Widget) -> Iterator[ipywidgets.Widget]:
    """The widget and every widget inside it: box children, figure axes and marks."""
    yield widget
    inner: list[ipywidgets.Widget] = []
    if isinstance(widget, ipywidgets.Box):
        inner = list(widget.children)
    elif isinstance(widget, Figure):
        inner = [*widget.axes, *widget.marks]
    for child in inner:
        yield from walk(child)


def of_type(root: ipywidgets.Widget, kind: type) -> list:
    return [widget for widget in walk(root) if isinstance(widget, kind)]


def test_each_view_carries_its_css_class(ex, dashboard):
    expected = {
        "sw-dashboard": dashboard,
        "sw-status": dashboard.status,
        "sw-pca": dashboard.brush,
        "sw-heatmap": dashboard.heatmap,
        "sw-inspector": dashboard.inspector,
        "sw-probe": dashboard.probe,
    }
    for css_class, widget in expected.items():
        assert css_class in widget._dom_classes, css_class
    assert "sw-sample-card" in dashboard.heatmap.children[1].children[1]._dom_classes
    monitor = sw.TrainingMonitor(ex.sae)
    assert "sw-monitor" in monitor._dom_classes
    # Each view's main figure is marked too (a view may hold several figures).
    for view in (dashboard.brush, dashboard.heatmap, dashboard.inspector, dashboard.probe, monitor):
        marked = [f for f in of_type(view, Figure) if "sw-figure" in f._dom_classes]
        assert marked == [view.figure]
    # Each class names one element of the dashboard, so a browser test finds exactly one.
    everything = list(walk(dashboard))
    for css_class in expected:
        assert sum(css_class in getattr(w, "_dom_classes", ()) for w in everything) == 1


def test_dashboard_puts_the_pca_beside_the_heatmap_then_table_and_inspector_then_probe(
    dashboard,
):
    status, first_row, unit_row, probe = dashboard.children
    assert status is dashboard.status
    assert list(first_row.children) == [dashboard.brush, dashboard.heatmap]
    assert first_row.layout.flex_flow == "row wrap"  # the heatmap moves under on narrow screens
    assert list(unit_row.children) == [dashboard.table, dashboard.inspector]
    assert probe is dashboard.probe
    # Figures stretch with the room, within bounds (the browser test measures the result):
    # "auto", the room less the figure's 2 px margins, where "100%" overflowed by 4 px.
    assert dashboard.brush.figure.layout.width == "auto"
    assert dashboard.heatmap.figure.layout.width == "auto"
    assert dashboard.heatmap.figure.layout.min_width == "340px"
    # Rows of figures inside the views wrap too, rather than overflow.
    for view in (dashboard.heatmap, dashboard.inspector, dashboard.probe):
        rows = [w for w in walk(view) if isinstance(w, ipywidgets.HBox) and len(w.children) > 1]
        figure_rows = [r for r in rows if any(of_type(c, Figure) for c in r.children)]
        assert figure_rows and all(r.layout.flex_flow == "row wrap" for r in figure_rows)


def test_views_still_work_alone(ex):
    views = [sw.PCABrush(ex), sw.ActivationHeatmap(ex), sw.UnitInspector(ex)]
    views.append(sw.ProbeSlider(ex, attribute="scale"))
    for view in views:
        assert isinstance(view, ipywidgets.VBox) and isinstance(view.figure, Figure)
        assert view.layout.flex is None  # sized by the dashboard only
    ex.selection.unit = 3
    assert views[2].summary.unit == 3 and 3 in views[3].shown_units


def test_every_numeric_axis_has_an_explicit_format(ex, dashboard):
    # bqplot guesses a format when none is given, and the guess throws in the browser on a
    # one-point domain ("invalid format: .undefinedg"). Ordinal axes print their categories.
    monitor = sw.TrainingMonitor(ex.sae)
    axes = of_type(dashboard, Axis) + of_type(monitor, Axis)
    assert len(axes) > 15
    for axis in axes:
        if isinstance(axis.scale, OrdinalScale):
            assert not axis.tick_format, axis.label  # d3.format would turn names into NaN
        else:
            assert axis.tick_format, axis.label


def test_toggle_labels_fit_their_buttons(dashboard):
    toggles = of_type(dashboard, ipywidgets.ToggleButtons)
    assert len(toggles) == 4  # colour by, select with, selection mode, unit table sort
    for toggle in toggles:
        labels = [label for label, _ in toggle._options_full]
        assert toggle.style.button_width == text_width(labels)
        assert int(toggle.style.button_width.removesuffix("px")) >= 7.5 * max(map(len, labels))
    average = dashboard.probe.average
    assert average.layout.width == text_width([average.description])
    assert text_width(["unit activation"]) == f"{int(15 * 7.5 + 28)}px"


def test_titled_figures_leave_room_for_the_title(ex, dashboard):
    figures = of_type(dashboard, Figure) + of_type(sw.TrainingMonitor(ex.sae), Figure)
    titled = [f for f in figures if f.title]
    assert {"top-activating samples", "sample  |  reconstruction"} <= {f.title for f in titled}
    for fig in titled:
        assert fig.fig_margin["top"] >= TITLE_ROOM, fig.title
        assert fig.title_style == {"font-size": "14px"}, fig.title


def test_no_mark_draws_a_legend_over_its_data(ex, dashboard):
    no_images = sw.datasets.superposition(n=300, n_features=8, dim=6, active=2.0, seed=0)
    sae = sw.SAE(n_units=8, k=2, epochs=1, batch_size=64, seed=0).fit(no_images.X, progress=False)
    plain = sw.Explorer(sae, no_images).dashboard()
    marks = of_type(dashboard, Mark) + of_type(plain, Mark)
    assert not [type(m).__name__ for m in marks if m.display_legend]
    assert "decoder (red) · encoder (blue)" in plain.inspector.figure.title


def test_probe_legend_names_each_curve_in_its_colour(ex, dashboard):
    probe = dashboard.probe
    focus = ex.selection.unit
    shown = probe.shown_units.tolist()
    assert probe.legend.units == shown
    for item, color, unit in zip(probe.legend.items, probe.curves.colors, shown, strict=True):
        assert item["color"] == color
        assert item["label"] == str(unit)  # the swatch of its colour is drawn before it
        assert item["bold"] == (unit == focus)
    # The bars wear the same colours, one per bar; the focused unit is orange everywhere.
    assert probe.bars.color_mode == "group"  # "element" colours 1-D bars all alike
    assert list(probe.bars.colors) == [item["color"] for item in probe.legend.items[:8]]
    probe.legend.click(2)
    assert ex.selection.unit == shown[2]
    assert probe.legend.items[2]["bold"]
    assert probe.legend.items[2]["color"] == "#ff7f0e" == probe.curves.colors[2]
    assert probe.focus_curve.colors == ["#ff7f0e"] and probe.focus_curve.visible
    assert probe.bars.colors[2] == "#ff7f0e"
    others = [c for i, c in enumerate(probe.bars.colors) if i != 2]
    assert "#ff7f0e" not in others and len(set(others)) == len(others)


def test_firing_columns_drops_units_silent_on_every_row():
    matrix = np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 0.5, 0.0, 0.0]], np.float32)
    data = HeatmapData(
        matrix=matrix, rows=np.array([4, 9]), units=np.array([7, 3, 5, 1]), row_labels=None
    )
    kept = firing_columns(data)
    np.testing.assert_array_equal(kept.units, [3, 1])
    np.testing.assert_array_equal(kept.matrix, matrix[:, [1, 3]])
    np.testing.assert_array_equal(kept.rows, [4, 9])
    silent = HeatmapData(np.zeros((2, 3), np.float32), np.arange(2), np.arange(3), None)
    assert firing_columns(silent) is silent  # nothing fires: the axis still has columns


def test_heatmap_picture_spans_exactly_its_columns_and_rows(ex):
    view = sw.ActivationHeatmap(ex, max_units=64)
    # All zeros: a selection whose most enriched units include some that never fire on it.
    zeros = np.flatnonzero(ex.dataset.labels == 0)
    assert len(zeros) < view.max_rows
    ranked = ex.enrichment(zeros, top=64).units
    ex.selection.samples = zeros.tolist()
    data = view.data
    n_rows, n_cols = data.matrix.shape
    assert n_rows == len(zeros)
    assert np.all(np.any(data.matrix != 0, axis=0))  # no blank column
    assert set(data.units) <= set(ranked) and n_cols < len(ranked)
    # One data unit per cell: the picture covers x in [0, columns], y in [0, rows], and the
    # scales end where the picture does (left of x = 0 is the label strip).
    np.testing.assert_array_equal(view.matrix_mark.x, [0, n_cols])
    np.testing.assert_array_equal(view.matrix_mark.y, [0, n_rows])
    assert (view.x_scale.max, view.y_scale.max, view.y_scale.min) == (n_cols, n_rows, 0)
    np.testing.assert_array_equal(view.strip_mark.y, [0, n_rows])
    assert view.x_scale.min == view.strip_mark.x[0]
    assert decode_png(view.matrix_mark.image.value).shape[:2] == (n_rows, n_cols)
    assert all(isinstance(m, Image) for m in (view.matrix_mark, view.strip_mark))


def test_tick_labels_reach_the_browser_before_their_positions(ex):
    view = sw.ActivationHeatmap(ex, max_units=40)
    order = []
    view.x_axis.observe(lambda change: order.append(change["name"]), ["tick_labels", "tick_values"])
    ex.selection.samples = np.flatnonzero(ex.dataset.labels == 3).tolist()
    # Two messages, labels first: bqplot draws new tick positions in a d3 transition that
    # keeps the formatter it had when the positions came, so labels must already be there.
    assert order == ["tick_labels", "tick_values"]
    units = view.data.units
    values = np.asarray(view.x_axis.tick_values)
    assert len(values) <= 16
    for value in values:
        # Keyed the way JavaScript prints the value: String(2.5) == "2.5", String(3) == "3".
        assert view.x_axis.tick_labels[repr(float(value))] == str(units[int(value)])


def test_set_ticks_keys_integers_as_javascript_prints_them():
    axis = Axis(scale=LinearScale(), tick_format="d")
    set_ticks(axis, [0, 2, 4.5], ["a", "b", "c"])
    assert axis.tick_labels == {"0": "a", "2": "b", "4.5": "c"}
    np.testing.assert_array_equal(axis.tick_values, [0, 2, 4.5])
