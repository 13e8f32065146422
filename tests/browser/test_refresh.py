"""After more training and `Explorer.refresh()`, the PCA points move in the page
(fixtures/refresh.ipynb): the scatter data the browser holds (bqplot's Scatter x/y, the WebGL
scatter's points) equals the kernel's new projection, the SVG dots are drawn there (an affine
image of the new coordinates, moved from the old) and the WebGL canvas shows a new picture."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

from .lab_page import LabPage, changed_pixels

pytestmark = pytest.mark.browser

# What the page holds: the widget models' data (read through the page's widget manager) and
# where the SVG dots are drawn (each point's group carries translate(x, y)).
_PAGE_STATE_JS = """
async ([svgId, glId]) => {
  const svg = await window.__swGetModel(svgId);
  const gl = await window.__swGetModel(glId);
  const points = gl.get('points');
  const [n, width] = points.shape;
  const flat = new Float32Array(points.view.buffer, points.view.byteOffset, n * width);
  const glXY = [];
  for (let i = 0; i < n; i++) glXY.push([flat[i * width], flat[i * width + 1]]);
  // The visible Scatter is the figure's last mark (the lasso's hidden copy comes first).
  const all = [...document.querySelectorAll('.sw-pca .object_grp')];
  const parents = [...new Set(all.map(g => g.parentNode))];
  const groups = all.filter(g => g.parentNode === parents[parents.length - 1]);
  const drawn = groups.map(g => {
    const m = /translate\\(\\s*([-\\d.e]+)[ ,]+([-\\d.e]+)/.exec(g.getAttribute('transform'));
    return m ? [Number(m[1]), Number(m[2])] : null;
  });
  return {svgX: [...svg.get('x')], svgY: [...svg.get('y')], gl: glXY, drawn};
}
"""


def kernel_sent(lab: LabPage) -> dict[str, Any]:
    return json.loads(lab.page.locator(".kernel-coords textarea").input_value())  # type: ignore[no-any-return]


def page_state(lab: LabPage, sent: dict[str, Any]) -> dict[str, Any]:
    return lab.page.evaluate(_PAGE_STATE_JS, [sent["svg"]["id"], sent["gl"]["id"]])  # type: ignore[no-any-return]


def page_holds(state: dict[str, Any], sent: dict[str, Any]) -> bool:
    """The browser's copies of both scatters' data equal what the kernel sent."""
    return bool(
        np.allclose(state["svgX"], sent["svg"]["x"], atol=1e-6)
        and np.allclose(state["svgY"], sent["svg"]["y"], atol=1e-6)
        and np.allclose(state["gl"], sent["gl"]["points"], atol=1e-6)
    )


def affine_residual_px(drawn: np.ndarray, coords: np.ndarray) -> float:
    """Largest distance (pixels) between the drawn dots and the best per-axis affine image of
    `coords` (the scales' mapping): under a pixel when the dots are drawn at `coords`."""
    worst = 0.0
    for axis in range(2):
        design = np.column_stack([coords[:, axis], np.ones(len(coords))])
        fit, *_ = np.linalg.lstsq(design, drawn[:, axis], rcond=None)
        worst = max(worst, float(np.abs(design @ fit - drawn[:, axis]).max()))
    return worst


def wait_until(condition: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout_s} s: {what}")
        time.sleep(0.25)


def test_points_move_in_the_page_after_refresh(lab: LabPage) -> None:
    lab.open_notebook("refresh.ipynb")
    lab.run_all_cells(timeout_s=240)
    lab.assert_no_errors()
    lab.page.wait_for_function("() => window.__swGetModel !== undefined")
    before = kernel_sent(lab)
    state = page_state(lab, before)
    assert page_holds(state, before)
    old_xy = np.column_stack([before["svg"]["x"], before["svg"]["y"]])
    old_drawn = np.asarray(state["drawn"], dtype=np.float64)
    assert old_drawn.shape == old_xy.shape  # one drawn dot per sample, in sample order
    assert affine_residual_px(old_drawn, old_xy) < 1.0
    canvas = lab.page.locator(".sw-pca canvas").first
    canvas.scroll_into_view_if_needed()
    old_picture = canvas.screenshot()

    lab.page.locator(".train-more button, button.train-more").first.click()
    expect(lab.page.locator(".kernel-coords textarea")).to_have_value(
        re.compile(r'"refreshes": 1\b'), timeout=60_000
    )
    after = kernel_sent(lab)
    new_xy = np.column_stack([after["svg"]["x"], after["svg"]["y"]])
    # The training moved the projections (beyond a rescaling, which the axes would absorb).
    assert affine_residual_px(new_xy, old_xy) > 1e-3
    assert not np.allclose(after["gl"]["points"], before["gl"]["points"], atol=1e-3)

    wait_until(
        lambda: page_holds(page_state(lab, after), after),
        30,
        "the page's scatter data is still not the kernel's new projection",
    )

    def dots_at_new_coords() -> bool:
        drawn = np.asarray(page_state(lab, after)["drawn"], dtype=np.float64)
        moved = np.linalg.norm(drawn - old_drawn, axis=1)
        return affine_residual_px(drawn, new_xy) < 1.0 and float(np.median(moved)) > 2.0

    wait_until(dots_at_new_coords, 30, "the SVG dots are not drawn at the new coordinates")
    wait_until(
        lambda: changed_pixels(old_picture, canvas.screenshot()) > 200,
        30,
        "the WebGL canvas still shows the old picture",
    )
    lab.screenshot("refreshed")
    lab.assert_no_errors()
