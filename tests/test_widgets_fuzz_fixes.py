"""Views under the inputs a fuzzer found mishandled: failed constructions, closed dashboards,
wrong types, probe values off the grid, malformed browser events, HTML in user strings, a
monitor built after training, and the wording of edge cases (one sample, silent units)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import sae_widgets as sw
from sae_widgets.explore.selection import Selection, SelectionError, SelectionTypeError
from sae_widgets.widgets.dashboard import status_text

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


def _fit(sae: sw.SAE, X: Any) -> sw.SAE:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small SAE gains nothing from more; the CI box is shared
    try:
        return sae.fit(X, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    ds = sw.datasets.digits()
    return ds, _fit(sw.SAE(n_units=32, k=4, epochs=1, batch_size=256, seed=0), ds.X)


@pytest.fixture
def ex(digits):
    ds, sae = digits
    return sw.Explorer(sae, ds)


def observers(selection: Any) -> int:
    """How many handlers follow any trait of `selection`."""
    return sum(len(handlers) for by_type in selection._trait_notifiers.values()
               for handlers in by_type.values())  # fmt: skip


# ---- a failed construction leaves nothing behind (3) ----------------------------------------


@pytest.mark.parametrize("bad", [99, -1, "a", True])
def test_a_failed_inspector_stops_following_the_selection(ex, bad, monkeypatch):
    before = observers(ex.selection)
    with pytest.raises((ValueError, TypeError), match="unit"):
        sw.UnitInspector(ex, unit=bad)
    assert observers(ex.selection) == before
    draws = []
    monkeypatch.setattr(sw.UnitInspector, "_draw", lambda self, unit: draws.append(unit))
    ex.selection.unit = 2
    assert draws == []  # no half-built inspector redraws


@pytest.mark.parametrize(
    "make",
    [
        lambda ex: sw.UnitInspector(ex),
        lambda ex: sw.ActivationHeatmap(ex),
        lambda ex: sw.ProbeSlider(ex, attribute="rotation"),
        lambda ex: sw.PCABrush(ex),
        lambda ex: sw.UnitTable(ex),
        lambda ex: sw.Explorer.dashboard(ex),
    ],
)
def test_any_view_failing_part_way_detaches_itself(ex, make, monkeypatch):
    """Every view class: a failure after it began following the Selection closes it."""
    from sae_widgets.widgets import _view

    real_follow = _view.ExplorerView.follow

    def follow_then_fail(self, handler, *names):
        real_follow(self, handler, *names)
        raise RuntimeError("boom")

    before = observers(ex.selection)
    monkeypatch.setattr(_view.ExplorerView, "follow", follow_then_fail)
    with pytest.raises(RuntimeError, match="boom"):
        make(ex)
    assert observers(ex.selection) == before


# ---- a closed dashboard is dead (10) --------------------------------------------------------


def test_closing_a_dashboard_closes_its_widgets_and_their_handlers(ex):
    before = observers(ex.selection)  # the Explorer's own (its history)
    d = ex.dashboard()
    picker = d.inspector.picker
    ex.selection.unit = 1
    d.close()
    assert picker.comm is None and d.probe.slider.comm is None
    assert d.brush.figure.comm is None and d.heatmap.matrix_mark.comm is None
    picker.value = 3  # nothing follows the closed picker any more
    assert ex.selection.unit == 1
    d.table.table.value = 5
    assert ex.selection.unit == 1
    assert observers(ex.selection) == before


# ---- wrong types are TypeErrors naming the value (8) ----------------------------------------


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("unit", lambda ex: setattr(ex.selection, "unit", True)),
        ("samples", lambda ex: setattr(ex.selection, "samples", ["1"])),
        ("samples", lambda ex: setattr(ex.selection, "samples", [1.5])),
        ("attribute", lambda ex: sw.ProbeSlider(ex, attribute=5)),
        ("source", lambda ex: sw.PCABrush(ex, source=3)),
        ("color_by", lambda ex: sw.PCABrush(ex, color_by=3)),
        ("sort_by", lambda ex: sw.UnitTable(ex, sort_by=3)),
        ("projection", lambda ex: sw.Explorer(ex.sae, ex.dataset, projection=3)),
        ("select_with", lambda ex: ex.dashboard(select_with=1)),
        ("attribute", lambda ex: ex.dashboard(attribute=5)),
        ("min_interval", lambda ex: sw.TrainingMonitor(ex.sae, min_interval="2")),
        ("curve_interval", lambda ex: sw.TrainingMonitor(ex.sae, curve_interval="x")),
    ],
)
def test_wrong_types_raise_type_errors(ex, name, call):
    before = observers(ex.selection)
    with pytest.raises(TypeError, match=name) as caught:
        call(ex)
    assert not isinstance(caught.value, ValueError)
    assert observers(ex.selection) == before


def test_type_errors_show_the_values_repr():
    with pytest.raises(
        TypeError, match=r"min_interval \(seconds\) must be a finite number >= 0.0; got '2'$"
    ):
        sw.TrainingMonitor(sw.SAE(), min_interval="2")
    sel = Selection(4, 10)
    with pytest.raises(SelectionTypeError, match=r"\['1'\]"):
        sel.samples = ["1"]
    with pytest.raises(SelectionError, match="shape"):  # integers, but not 1-D: a value error
        sel.samples = np.zeros((2, 2), dtype=int)


# ---- dashboard(attribute=...) on a dataset without attributes (7) ---------------------------


def test_dashboard_refuses_an_attribute_the_dataset_lacks(digits):
    ds, sae = digits
    bare = sw.Explorer(sae, ds.X)
    before = observers(bare.selection)
    with pytest.raises(ValueError, match=r"attribute: this dataset has no attributes.*'nope'"):
        bare.dashboard(attribute="nope")
    assert observers(bare.selection) == before
    with pytest.raises(ValueError, match=r"attribute must be one of 'rotation'.*; got 'nope'"):
        sw.Explorer(sae, ds).dashboard(attribute="nope")


# ---- probe_value agrees with the slider (9) -------------------------------------------------


def test_probe_value_outside_the_grid_is_refused_and_inside_snapped(ex):
    probe = sw.ProbeSlider(ex, attribute="scale")
    grid = probe.result.values
    with pytest.raises(ValueError, match=r"probe_value must lie in the range of 'scale'.*999"):
        ex.selection.probe_value = 999.0
    assert ex.selection.probe_value is None
    ex.selection.probe_value = float(grid[1]) + 0.3 * float(grid[2] - grid[1])  # off the grid
    assert ex.selection.probe_value == float(grid[1]) == probe.slider.value
    ex.selection.probe_value = float(np.float32(grid[-1]))  # a float32 copy of the end: inside
    assert ex.selection.probe_value == float(grid[-1]) == probe.slider.value


def test_switching_attribute_drops_the_previous_attributes_value(ex):
    probe = sw.ProbeSlider(ex, attribute="rotation")
    ex.selection.probe_value = float(probe.result.values[-1])  # e.g. 30 degrees
    ex.selection.probe_attribute = "scale"  # 30 is no scale
    assert ex.selection.probe_value is None
    assert probe.slider.value == 1.0  # the identity, which is what None shows
    ex.selection.probe_attribute = "shift_x"
    ex.selection.probe_value = 1.0  # a pixel: inside thickness's grid, yet no thickness
    ex.selection.probe_attribute = "thickness"
    assert ex.selection.probe_value is None and probe.slider.value == 0.0  # the identity
    with ex.selection.hold_trait_notifications():  # both at once: checked together
        ex.selection.probe_attribute = "rotation"
        ex.selection.probe_value = float(probe.result.values[0])
    assert ex.selection.probe_value == probe.slider.value


# ---- browser events never raise; public callbacks say what is wrong (11) --------------------


@pytest.mark.parametrize(
    "event",
    [
        {"data": {"click_x": None, "click_y": None}},
        {"data": {"click_x": "a", "click_y": "b"}},
        {"data": {"click_x": [1], "click_y": {}}},
        {"data": None},
        {"data": "x"},
        {},
        None,
        {"data": {"click_x": float("nan"), "click_y": 1e308}},
    ],
)
def test_malformed_heatmap_clicks_are_ignored(ex, event):
    heatmap = sw.ActivationHeatmap(ex)
    unit, sample = ex.selection.unit, ex.selection.probe_sample
    heatmap._clicked_matrix(None, event)
    heatmap._clicked_strip(None, event)
    assert (ex.selection.unit, ex.selection.probe_sample) == (unit, sample)
    heatmap._clicked_matrix(None, {"data": {"click_x": None, "click_y": 1}})  # the report's
    assert ex.selection.unit == unit
    heatmap._clicked_matrix(None, {"data": {"click_x": 0.5, "click_y": 0.5}})  # a real click
    assert ex.selection.unit == int(heatmap.data.units[0])


def test_curve_and_bar_clicks_ignore_bad_indices_alike(ex):
    probe = sw.ProbeSlider(ex, attribute="rotation")
    ex.selection.unit = None
    for index in (len(probe.shown_units), -1, 1.5, "0", None, True, float("inf")):
        probe.response_curves._clicked_curve(None, {"data": {"index": index}})
        probe._clicked_bar(None, {"data": {"index": index}})
    probe.response_curves._clicked_curve(None, None)
    assert ex.selection.unit is None
    probe.response_curves._clicked_curve(None, {"data": {"index": 2}})
    assert ex.selection.unit == int(probe.shown_units[2])


def test_a_monitor_given_metrics_without_a_step_says_so():
    monitor = sw.TrainingMonitor(sw.SAE(), trailing=False)
    with pytest.raises(ValueError, match=r"metrics: expected a 'step' entry.*\['loss'\]"):
        monitor({"loss": 1.0})
    with pytest.raises(TypeError, match="metrics: 'step' must be a number"):
        monitor({"step": "3"})
    with pytest.raises(TypeError, match="metrics: expected a dict"):
        monitor([("step", 1)])
    assert monitor.history == []


# ---- HTML from user strings is escaped (5) --------------------------------------------------


def test_the_sample_card_escapes_label_names(digits):
    ds, sae = digits
    evil = "<img src=x onerror=alert(1)>"
    names = [evil, *[str(i) for i in range(1, 10)]]
    ex = sw.Explorer(sae, sw.Dataset(ds.X, labels=ds.labels, label_names=names))
    heatmap = sw.ActivationHeatmap(ex)
    ex.selection.probe_sample = int(np.flatnonzero(ds.labels == 0)[0])
    assert "<img" not in heatmap.card_title.value
    assert "&lt;img src=x onerror=alert(1)&gt;" in heatmap.card_title.value


# ---- a monitor built after training shows the run (6) ---------------------------------------


def test_a_monitor_built_after_fit_shows_the_finished_run(digits):
    ds, _ = digits
    sae = _fit(sw.SAE(n_units=16, k=2, epochs=1, batch_size=128, seed=0), ds.X[:1024])
    steps = [entry["step"] for entry in sae.history_]
    monitor = sw.TrainingMonitor(sae, min_interval=0.0, trailing=False)
    assert monitor.lines["loss"].x.tolist() == steps
    assert monitor.progress.value == monitor.progress.max == steps[-1]
    assert monitor.status.value.startswith(f"done: {int(steps[-1])} steps")

    sae.partial_fit(ds.X[:256], callbacks=[monitor])  # continues the run's curve
    assert monitor.lines["loss"].x[0] == steps[0] and monitor.lines["loss"].x[-1] > steps[-1]

    _fit(sae, ds.X[:512])  # a later fit without the monitor: refresh() shows it
    monitor.refresh()
    assert monitor.lines["loss"].x.tolist() == [entry["step"] for entry in sae.history_]
    assert monitor.status.value.startswith("done:")


def test_a_monitor_of_an_untrained_sae_says_not_started():
    monitor = sw.TrainingMonitor(sw.SAE(n_units=4, k=1))
    assert monitor.status.value == "not started" and len(monitor.lines["loss"].x) == 0


# ---- wording of edge cases (12) -------------------------------------------------------------


def test_one_sample_is_singular(ex):
    assert status_text(1, 4) == "1 sample selected · unit 4"
    assert status_text(2, None) == "2 samples selected · unit none"
    brush = sw.PCABrush(ex)
    ex.selection.samples = [3]
    assert brush.count.value == "<b>1</b> sample selected"


def test_a_selection_no_unit_fires_on_is_called_silent():
    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(400, 8))).astype(np.float32)
    sae = _fit(sw.SAE(n_units=8, activation="relu", epochs=1, batch_size=64, seed=0), X)
    candidates = -np.abs(rng.normal(size=(2000, 8))).astype(np.float32) * 20
    silent = candidates[(np.asarray(sae.transform(candidates)) > 0).sum(1) == 0][:5]
    assert len(silent) == 5
    ex = sw.Explorer(sae, np.concatenate([X, silent]))
    brush, heatmap = sw.PCABrush(ex), sw.ActivationHeatmap(ex)
    ex.selection.samples = list(range(400, 405))
    assert brush.enriched.units == []
    assert "no unit fires on the selection" in brush.enriched.caption
    assert "most enriched" not in heatmap.caption.value
    assert "none of the units fires on them" in heatmap.caption.value
    ex.selection.samples = [0, 1, 2]
    assert brush.enriched.units and "no unit fires" not in brush.enriched.caption


def test_a_dead_units_colour_bar_reads_zero(digits):
    ds, _ = digits
    sae = _fit(sw.SAE(n_units=64, k=1, epochs=1, batch_size=256, seed=0), ds.X)
    ex = sw.Explorer(sae, ds)
    dead = np.flatnonzero(ex.codes.counts == 0)
    assert len(dead)
    brush = sw.PCABrush(ex, color_by="activation")
    ex.selection.unit = int(dead[0])
    assert "1e-06" not in brush.legend.value
    assert "never fires" in brush.legend.value
