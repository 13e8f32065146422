"""Fast successive WebGL scatter updates (fixtures/gl_burst.ipynb): the data, colours and
selection of a jupyter-scatter PCABrush change many times with no wait between (clicks in a
row, as a user dragging a slider sends them, a loop calling refresh in one callback, and 24
quick unit and selection changes in one callback, whose points reach the page within one
draw). The page must end holding the kernel's final points, colours and selection, and drawing
them: regl-scatterplot holds the model's final points (none of the plot's draws was refused)
and its canvas shows the same picture as a fresh view of the final state; no page errors."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

from .lab_page import LabPage, changed_pixels
from .test_refresh import wait_until

pytestmark = pytest.mark.browser

CLICKS = 5  # one change each
BURST = 6  # changes in one callback
RUSH = 24  # quick changes in one callback

# The page's scatter model of widget `id` and its points (n rows of `width`: x, y, colour
# value, opacity value), flat: the start of the two functions below.
_MODEL_POINTS_JS = """
  const model = await window.__swGetModel(id);
  const points = model.get('points');
  const [n, width] = points.shape;
  const flat = new Float32Array(points.view.buffer, points.view.byteOffset, n * width);
"""

# The scatter model's points and selection, as the page holds them.
_PAGE_STATE_JS = (
    """
async (id) => {"""
    + _MODEL_POINTS_JS
    + """  const rows = [];
  for (let i = 0; i < n; i++) rows.push([...flat.subarray(i * width, (i + 1) * width)]);
  const selection = model.get('selection');
  const chosen = selection ? [...new Uint32Array(
    selection.view.buffer, selection.view.byteOffset, selection.view.byteLength / 4)] : [];
  return {points: rows, selection: chosen.sort((a, b) => a - b)};
}
"""
)


# Counts the draws asked of the plot under test (regl-scatterplot, kept by jupyter-scatter on
# the element around its canvas), and those it refused ("Ignoring draw call...").
_COUNT_DRAWS_JS = """
root => {
  if (window.__swDraws) return true;
  let plot = null;
  for (const canvas of root.querySelectorAll('canvas')) {
    for (let node = canvas; node && !plot; node = node.parentElement) {
      if (node.api && typeof node.api.draw === 'function') plot = node.api;
    }
  }
  if (!plot) return false;
  const draws = {asked: 0, refused: 0, errors: []};
  const draw = plot.draw;
  plot.draw = (points, options) => {
    draws.asked += 1;
    return draw(points, options).catch(error => {
      draws.refused += 1;
      draws.errors.push(String(error));
      throw error;
    });
  };
  window.__swDraws = draws;
  window.__swPlot = plot;
  return true;
}
"""

# Whether the points regl-scatterplot last took (what it draws) are the model's points.
_PLOT_HOLDS_JS = (
    """
async (id) => {"""
    + _MODEL_POINTS_JS
    + """  const drawn = window.__swPlot.get('points');
  if (!drawn || drawn.length !== n) return false;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < width; j++) {
      if (Math.abs(drawn[i][j] - flat[i * width + j]) > 1e-6) return false;
    }
  }
  return true;
}
"""
)


def kernel_state(lab: LabPage) -> dict[str, Any]:
    return json.loads(lab.page.locator(".kernel-state textarea").input_value())  # type: ignore[no-any-return]


def page_holds(lab: LabPage, sent: dict[str, Any]) -> bool:
    state = lab.page.evaluate(_PAGE_STATE_JS, sent["id"])
    return bool(
        np.shape(state["points"]) == np.shape(sent["points"])
        and np.allclose(state["points"], sent["points"], atol=1e-6)
        and state["selection"] == sent["selection"]
    )


def test_fast_successive_webgl_updates_end_showing_the_final_state(lab: LabPage) -> None:
    lab.open_notebook("gl_burst.ipynb")
    lab.run_all_cells(timeout_s=240)
    lab.assert_no_errors()
    lab.page.wait_for_function("() => window.__swGetModel !== undefined")
    first = kernel_state(lab)
    wait_until(lambda: page_holds(lab, first), 30, "the page never held the first state")
    lab.page.wait_for_function(
        f"() => ({_COUNT_DRAWS_JS})(document.querySelector('.under-test'))", timeout=30_000
    )

    step = lab.page.locator(".do-step button, button.do-step").first
    for _ in range(CLICKS):  # no wait between: each click queues one kernel callback
        step.click()
    lab.page.locator(".do-burst button, button.do-burst").first.click()
    expect(lab.page.locator(".kernel-state textarea")).to_have_value(
        re.compile(rf'"steps": {CLICKS + BURST}\b'), timeout=120_000
    )
    lab.page.locator(".do-rush button, button.do-rush").first.click()
    expect(lab.page.locator(".kernel-state textarea")).to_have_value(
        re.compile(rf'"steps": {CLICKS + BURST + RUSH}\b'), timeout=120_000
    )
    final = kernel_state(lab)
    assert final["selection"] and final["points"] != first["points"]
    wait_until(
        lambda: page_holds(lab, final),
        30,
        "the page's scatter model is not the kernel's final points, colours and selection",
    )
    # What the plot draws: the model's final points; a refused draw (asked while the last one
    # ran) would leave older ones.
    wait_until(
        lambda: lab.page.evaluate(_PLOT_HOLDS_JS, final["id"]),
        30,
        "regl-scatterplot does not hold the model's final points",
    )
    draws = lab.page.evaluate("() => window.__swDraws")
    assert draws["asked"] > 1 and draws["refused"] == 0, draws

    # What the canvas draws: a fresh view of the same final state, drawn once, is the
    # reference (held frames wait at most 1 s; the comparison polls past that).
    lab.page.locator(".do-reference button, button.do-reference").first.click()
    expect(lab.page.locator(".kernel-state textarea")).to_have_value(
        re.compile('"reference"'), timeout=60_000
    )
    reference = kernel_state(lab)["reference"]
    assert np.allclose(reference["points"], final["points"], atol=1e-6)
    assert reference["selection"] == final["selection"]
    canvases = [lab.page.locator(f".{name} canvas").first for name in ("under-test", "reference")]
    canvases[1].wait_for()

    def same_picture() -> bool:
        shots = []
        for name, canvas in zip(("under-test", "reference"), canvases):
            # centred: at the panel's top edge, the notebook toolbar's shadow lies over it
            canvas.evaluate("c => c.scrollIntoView({block: 'center'})")
            shots.append(canvas.screenshot())
            lab.artifacts_dir.mkdir(parents=True, exist_ok=True)  # kept when the test fails
            (lab.artifacts_dir / f"canvas-{name}.png").write_bytes(shots[-1])
        return changed_pixels(*shots) < 50

    wait_until(same_picture, 30, "the canvas does not show the final state's picture")
    lab.screenshot("final")
    lab.assert_no_errors()
    drops = [line for line in lab.console if "Ignoring draw call" in line]
    assert not drops, drops
