"""PCABrush regressions found in a browser round on odd data: a released rectangle stays drawn
around what it selected, and after `Explorer.refresh()` the WebGL scatter gets its new axes,
positions and colours in one message (seven before, the axes first)."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import numpy as np
import pytest
import torch

import sae_widgets as sw

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


def small_fit(sae: sw.SAE, X: Any, partial: bool = False) -> sw.SAE:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny SAEs; the test machine's cores are shared
    try:
        return sae.partial_fit(X) if partial else sae.fit(X, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_a_released_rectangle_stays_drawn_until_the_selection_changes_elsewhere():
    ds = sw.datasets.digits()[np.arange(300)]
    ex = sw.Explorer(small_fit(sw.SAE(n_units=16, k=3, epochs=1, batch_size=64), ds), ds)
    view = sw.PCABrush(ex, select_with="rectangle")
    x, y = np.asarray(view.scatter.x), np.asarray(view.scatter.y)
    x_range = [float(np.percentile(x, 10)), float(np.percentile(x, 80))]
    y_range = [float(np.percentile(y, 10)), float(np.percentile(y, 80))]
    view.brush.brushing = True
    view.brush.selected_x, view.brush.selected_y = x_range, y_range
    view.brush.brushing = False
    assert ex.selection.samples  # the rectangle selected ...
    # ... and is still drawn around them (it used to be cleared on its own release)
    assert view.brush.selected_x is not None and list(view.brush.selected_x) == x_range
    assert view.brush.selected_y is not None and list(view.brush.selected_y) == y_range
    ex.selection.samples = [0, 1]  # selected elsewhere: the rectangle no longer says what is
    assert view.brush.selected_x is None and view.brush.selected_y is None


def test_refresh_sends_the_webgl_axes_and_points_in_one_message(monkeypatch):
    ds = sw.datasets.superposition(n=3500, n_features=12, dim=10, active=2.0, seed=2)
    sae = small_fit(sw.SAE(n_units=16, k=3, epochs=1, batch_size=256, seed=0), ds.X)
    ex = sw.Explorer(sae, ds)
    view = sw.PCABrush(ex, max_points=500, color_by="activation")
    plot = view.scatter.widget
    before = np.asarray(plot.points).copy()
    for _ in range(3):
        small_fit(sae, ds.X[:1024], partial=True)
    sent: list[dict[str, Any]] = []
    original = widgets.Widget._send

    def record(self, msg, buffers=None):
        if self is plot and msg.get("method") in ("update", "echo_update"):
            sent.append(msg["state"])
        return original(self, msg, buffers)

    monkeypatch.setattr(widgets.Widget, "_send", record)
    ex.refresh()
    # One message: the axes' new domains come with the points they belong to (it was seven)
    assert len(sent) == 1 and {"points", "x_scale_domain", "y_scale_domain"} <= set(sent[0])
    after = np.asarray(plot.points)
    assert not np.allclose(after[:, :2], before[:, :2], atol=1e-3)  # the points moved
    palette, index = view._colors  # the colour values sent are those of the new codes
    np.testing.assert_allclose(after[:, 2], (np.asarray(index) + 0.5) / len(palette), atol=1e-6)
