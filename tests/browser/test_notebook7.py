"""The quickstart notebook in Notebook 7's UI (not JupyterLab): its two training monitors and
its dashboard on digits all draw (SVG marks, or pixels on a WebGL canvas), a click on a
heatmap column and a click on a unit the PCA view lists each focus that unit in every view
(status line, inspector text and decoder picture), with no page errors."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, expect

from .lab_page import LabPage
from .test_quickstart import INSPECTOR_STATS, STATUS, selected_and_unit
from .test_views import assert_no_errors_but_notebook76s

pytestmark = pytest.mark.browser

# The unit axis's ticks of the heatmap (one per column shown): [unit, x centre on screen].
_UNIT_TICKS_JS = """
figure => [...figure.querySelectorAll('g.axis')]
  .filter(axis => axis.textContent.includes('units'))
  .flatMap(axis => [...axis.querySelectorAll('.tick')])
  .map(tick => {
    const box = tick.getBoundingClientRect();
    return [tick.textContent.trim(), box.left + box.width / 2];
  })
  .filter(([text]) => /^\\d+$/.test(text))
"""


def focus_follows(lab: LabPage, unit: int, before: list[str]) -> None:
    """Every view shows `unit` focused: the status line, the inspector's text and its
    decoder picture (a new one)."""
    status = lab.view("sw-status")
    expect(status).to_have_text(re.compile(rf" · unit {unit}$"))
    stats = lab.view("sw-inspector").locator(".widget-html", has_text=INSPECTOR_STATS)
    expect(stats).to_have_text(re.compile(rf"^unit {unit} · "))
    lab.wait_for_image_change(lab.view_figure("sw-inspector"), before)


def click_heatmap_column(lab: LabPage, heatmap: Locator, focused: int | None) -> int:
    """Click the middle of a heatmap column whose unit is not focused; returns its unit."""
    heatmap.scroll_into_view_if_needed()
    matrix = heatmap.locator("svg.svg-figure image").first  # the matrix (then the strip)
    box = matrix.bounding_box()
    assert box is not None
    ticks = [
        (int(text), x)
        for text, x in heatmap.evaluate(_UNIT_TICKS_JS)
        if box["x"] < x < box["x"] + box["width"]
    ]
    unit, x = next((unit, x) for unit, x in ticks if unit != focused)
    lab.page.mouse.click(x, box["y"] + box["height"] / 2)
    return unit


def test_dashboard_and_monitors_in_notebook_7(lab: LabPage) -> None:
    lab.open_notebook("01_quickstart.ipynb", ui="notebook")
    assert lab.page.locator("#jp-NotebookPanel, .jp-NotebookPanel").count() >= 1
    assert "/notebooks/" in lab.page.url  # Notebook 7's page, not JupyterLab's
    lab.run_all_cells(timeout_s=600)
    assert_no_errors_but_notebook76s(lab)
    figures = lab.assert_figures_rendered(min_count=10)
    expect(lab.view("sw-monitor")).to_have_count(2)
    for monitor in range(2):
        assert lab.view("sw-monitor").nth(monitor).locator(".bqplot.figure").count() >= 1
    for view in ("sw-pca", "sw-heatmap", "sw-inspector", "sw-probe"):
        expect(lab.view_figure(view)).to_have_count(1)
    assert all(f.width > 0 and f.height > 0 for f in figures)
    status = lab.view("sw-status")
    expect(status).to_have_text(STATUS)
    _, focused = selected_and_unit(status.inner_text())
    lab.screenshot("notebook7-after-run-all")

    # A click on a heatmap column focuses its unit everywhere.
    decoder = lab.view_figure("sw-inspector")
    before = lab.image_sources(decoder)
    unit = click_heatmap_column(lab, lab.view_figure("sw-heatmap"), focused)
    focus_follows(lab, unit, before)

    # A click on a unit the PCA view lists (most enriched in the selection) does too.
    before = lab.image_sources(decoder)
    listed = lab.view("sw-pca").locator("button[title^='focus unit']:visible")
    titles = listed.evaluate_all("buttons => buttons.map(b => b.title)")
    units = [int(title.removeprefix("focus unit ")) for title in titles]
    position, target = next((i, u) for i, u in enumerate(units) if u != unit)
    listed.nth(position).click()
    focus_follows(lab, target, before)
    lab.screenshot("notebook7-after-clicks")
    assert_no_errors_but_notebook76s(lab)
