"""The dashboard: every view linked through one Selection, headless.

Mock observers on the Selection count notifications: one user action must cause exactly one
Selection change (a feedback loop between views would show up as more), and a change made
from Python must reach every view.
"""

from __future__ import annotations

from unittest.mock import Mock

import ipywidgets
import numpy as np
import pytest
from traitlets import All

import sae_widgets as sw

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


@pytest.fixture
def linked(digits_sae):
    ex = sw.Explorer(*digits_sae)
    dashboard = ex.dashboard(attribute="rotation")
    return ex, dashboard


def watch(selection):
    """A Mock called once per Selection trait notification (any trait)."""
    observer = Mock()
    selection.observe(observer, names=All)
    return observer


def changed_traits(observer):
    return [call.args[0]["name"] for call in observer.call_args_list]


def test_dashboard_shows_every_view_and_the_status_line(linked):
    ex, dashboard = linked
    assert isinstance(dashboard, ipywidgets.Widget)
    views = [dashboard.brush, dashboard.inspector, dashboard.heatmap, dashboard.probe]
    assert [type(v).__name__ for v in views] == [
        "PCABrush",
        "UnitInspector",
        "ActivationHeatmap",
        "ProbeSlider",
    ]
    for view in views:
        assert type(view.figure).__name__ == "Figure"
    focused = ex.selection.unit
    assert dashboard.status.value == f"<b>0 samples selected · unit {focused}</b>"
    ex.selection.samples = [1, 2, 3]
    ex.selection.unit = 7
    assert dashboard.status.value == "<b>3 samples selected · unit 7</b>"


def test_a_unit_set_from_python_reaches_every_view(linked):
    ex, dashboard = linked
    dashboard.brush.color_by.value = "activation"
    unit = int(dashboard.heatmap.data.units[2])
    observer = watch(ex.selection)
    ex.selection.unit = unit
    assert changed_traits(observer) == ["unit"]
    assert dashboard.inspector.summary.unit == unit
    assert dashboard.inspector.picker.value == unit
    np.testing.assert_array_equal(dashboard.heatmap.focus_box.x, [2, 3, 3, 2, 2])
    assert unit in dashboard.probe.shown_units
    column = np.zeros(ex.n_samples, np.float32)
    samples, values = ex.codes.unit_samples(unit)
    column[samples] = values
    from sae_widgets.widgets._render import ACTIVATION_PALETTE, activation_levels

    top = float(ex.codes.max_activation[unit])
    expected = [ACTIVATION_PALETTE[i] for i in activation_levels(column, top)]
    assert list(dashboard.brush.scatter.colors) == expected


def brush_gesture(dashboard):
    x = np.asarray(dashboard.brush.scatter.x)
    y = np.asarray(dashboard.brush.scatter.y)
    selector = dashboard.brush.brush
    selector.brushing = True
    for fraction in (0.3, 0.6, 0.9):  # the rectangle grows while the mouse moves
        selector.selected_x = [x.min(), x.min() + fraction * np.ptp(x)]
        selector.selected_y = [y.min(), y.min() + fraction * np.ptp(y)]
    selector.brushing = False


def lasso_gesture(dashboard):
    view = dashboard.brush
    view.select_with.value = "rectangle"  # a choice of tool, not a Selection change
    view.select_with.value = "lasso"
    message = {"method": "update", "state": {"selected": [7, 8, 9]}, "buffer_paths": []}
    view.lasso_target._handle_msg({"content": {"data": message}, "buffers": []})


def pick_thumbnail(dashboard):
    gallery = dashboard.inspector.gallery
    gallery._clicked(gallery.mark, {"data": {"click_x": 2.0, "click_y": 20.0}})


def browser_unit_click(dashboard):
    """A click on a nearest-unit button in the browser: the row's custom message."""
    buttons = dashboard.inspector.nearest
    message = {"method": "custom", "content": {"unit": buttons.units[1]}}
    buttons._handle_msg({"content": {"data": message}, "buffers": []})


ACTIONS = {
    # action name: (what the user does, the one trait it must change)
    "unit picker": (lambda d: setattr(d.inspector.picker, "value", 3), "unit"),
    "nearest-unit button": (lambda d: d.inspector.nearest.click(1), "unit"),
    "nearest-unit button in the browser": (browser_unit_click, "unit"),
    "top-sample thumbnail": (pick_thumbnail, "probe_sample"),
    "brush release": (brush_gesture, "samples"),
    "lasso": (lasso_gesture, "samples"),
    "heatmap column": (
        lambda d: d.heatmap._clicked_matrix(None, {"data": {"click_x": 5.5, "click_y": 1.0}}),
        "unit",
    ),
    "heatmap row strip": (
        lambda d: d.heatmap._clicked_strip(None, {"data": {"click_x": -1.0, "click_y": 7.5}}),
        "probe_sample",
    ),
    "probe slider": (
        lambda d: setattr(d.probe.slider, "value", d.probe.slider.options[2][1]),
        "probe_value",
    ),
    "probe attribute": (lambda d: setattr(d.probe.attribute, "value", "scale"), "probe_attribute"),
    "probe bar": (lambda d: d.probe._clicked_bar(None, {"data": {"index": 1}}), "unit"),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_one_user_action_is_one_selection_change(linked, action):
    ex, dashboard = linked
    ex.selection.unit = int(dashboard.heatmap.data.units[0])  # not the unit any action picks
    do, trait = ACTIONS[action]
    observer = watch(ex.selection)
    do(dashboard)
    assert changed_traits(observer) == [trait]


def test_brush_buttons_and_clear_are_one_change_each(linked):
    ex, dashboard = linked
    brush_gesture(dashboard)
    assert ex.selection.samples
    observer = watch(ex.selection)
    dashboard.brush.enriched.click(0)
    assert changed_traits(observer) == ["unit"]
    dashboard.brush.clear_button.click()
    assert changed_traits(observer) == ["unit", "samples"]
    assert ex.selection.samples == []
    assert dashboard.status.value.startswith("<b>0 samples selected")


def test_dashboard_starts_with_the_lasso_or_the_rectangle(digits_sae):
    ex = sw.Explorer(*digits_sae)
    default = ex.dashboard()
    assert default.brush.figure.interaction is default.brush.lasso
    rectangle = ex.dashboard(select_with="rectangle")
    assert rectangle.brush.figure.interaction is rectangle.brush.brush


def test_closed_dashboard_stops_following(linked):
    ex, dashboard = linked
    inspector = dashboard.inspector
    before = inspector.summary.unit
    dashboard.close()
    ex.selection.unit = (before + 1) % ex.n_units
    assert inspector.summary.unit == before
