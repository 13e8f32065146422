"""The quickstart notebook in a real JupyterLab: it runs, draws, and its dashboard responds
to a click and a lasso the way a user would make them.

Views are found by their CSS classes (sw-status, sw-pca, sw-heatmap, sw-inspector; each
view's main figure is .sw-figure), not by the words on screen, so rewording a title or a
caption breaks no test.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .lab_page import LabPage, changed_pixels

pytestmark = pytest.mark.browser

STATUS = re.compile(r"^[\d,]+ samples? selected · unit (\d+|none)$")
INSPECTOR_STATS = re.compile(r"^unit \d+ · fires on ")
N_DIGITS = 1797
N_ZEROS = 178
# Lassos as fractions of the PCA plot area: the left and the right half, which cover every
# point between them. Points on the shared edge may count in both or neither.
LEFT_HALF = [(0.01, 0.01), (0.5, 0.01), (0.5, 0.99), (0.01, 0.99), (0.01, 0.01)]
RIGHT_HALF = [(0.5, 0.01), (0.99, 0.01), (0.99, 0.99), (0.5, 0.99), (0.5, 0.01)]
ON_THE_EDGE = 10


def selected_and_unit(text: str) -> tuple[int, int | None]:
    """(number of samples, focused unit) from the dashboard's status line."""
    match = re.fullmatch(r"([\d,]+) samples? selected · unit (\d+|none)", text.strip())
    assert match is not None, f"unexpected status line {text!r}"
    unit = None if match[2] == "none" else int(match[2])
    return int(match[1].replace(",", "")), unit


def assert_heatmap_columns_follow_enrichment(lab: LabPage) -> None:
    """The heatmap's first column is the unit the PCA view lists as most enriched (tick
    labels once lagged behind their columns, showing the previous selection's units)."""
    enriched = lab.view("sw-pca").locator("button[title^='focus unit']:visible").first
    top_unit = enriched.get_attribute("title", timeout=5_000).removeprefix("focus unit ")
    unit_axis = lab.view_figure("sw-heatmap").locator("g.axis").filter(has_text="units")
    expect(unit_axis.locator(".tick text").first).to_have_text(top_unit)


def test_quickstart_dashboard_renders_and_follows_clicks_and_lasso(lab: LabPage) -> None:
    lab.open_notebook("01_quickstart.ipynb")
    lab.run_all_cells(timeout_s=600)
    lab.assert_no_errors()
    # Two training monitors and the dashboard's views; every one of them drew something.
    lab.assert_figures_rendered(min_count=10)
    expect(lab.view("sw-monitor")).to_have_count(2)
    for view in ("sw-pca", "sw-heatmap", "sw-inspector", "sw-probe"):
        expect(lab.view_figure(view)).to_have_count(1)

    status = lab.view("sw-status")
    expect(status).to_have_count(1)
    expect(status).to_have_text(STATUS)
    # The notebook's last cell selected every zero and focused a unit, from Python.
    n_selected, focused = selected_and_unit(status.inner_text())
    assert n_selected == N_ZEROS and focused is not None
    inspector = lab.view("sw-inspector")
    inspector_stats = inspector.locator(".widget-html", has_text=INSPECTOR_STATS)
    expect(inspector_stats).to_have_text(re.compile(rf"^unit {focused} · "))
    lab.screenshot("after-run-all")

    # The heatmap's picture fills the plot area right of the label strip: one cell per
    # (row, unit), however few rows are selected.
    heatmap = lab.view_figure("sw-heatmap")
    matrix, strip = lab.image_extents(heatmap)
    assert matrix["right"] == pytest.approx(1.0, abs=0.01), matrix
    assert matrix["top"] == pytest.approx(0.0, abs=0.01), matrix
    assert matrix["bottom"] == pytest.approx(1.0, abs=0.01), matrix
    assert 0.0 <= strip["left"] < strip["right"] < matrix["left"] < 0.5, (strip, matrix)
    assert_heatmap_columns_follow_enrichment(lab)

    # The probe's bars are coloured one by one, the focused unit's in orange.
    bar_fills = (
        lab.view("sw-probe")
        .locator("rect.bar")
        .evaluate_all("bars => bars.map(b => getComputedStyle(b).fill)")
    )
    assert len(bar_fills) == 8 and len(set(bar_fills)) == 8, bar_fills
    assert "rgb(255, 127, 14)" in bar_fills, bar_fills

    # Click a unit button (enriched, nearest or co-firing) other than the focused unit: the
    # inspector's text and decoder picture, and the status line, switch to it.
    decoder = lab.view_figure("sw-inspector")
    decoder_before = lab.image_sources(decoder)
    decoder_pixels_before = decoder.screenshot()
    buttons = lab.view("sw-dashboard").locator("button[title^='focus unit']:visible")
    units = [
        int(title.removeprefix("focus unit "))
        for title in buttons.evaluate_all("buttons => buttons.map(b => b.title)")
    ]
    position, target = next((i, unit) for i, unit in enumerate(units) if unit != focused)
    buttons.nth(position).click()
    expect(inspector_stats).to_have_text(re.compile(rf"^unit {target} · "))
    expect(status).to_have_text(f"{N_ZEROS} samples selected · unit {target}")
    lab.wait_for_image_change(decoder, decoder_before)
    assert changed_pixels(decoder_pixels_before, decoder.screenshot()) > 100
    lab.assert_no_errors()

    output = lab.view("jp-OutputArea-output")
    dashboard = output.filter(has=lab.page.locator(".sw-dashboard"))
    lab.screenshot("dashboard", target=dashboard, docs_name="dashboard.png", viewport_height=2800)

    # Lasso the left half of the PCA plot (the lasso is the default tool): the status line
    # and the heatmap rows follow, and the lasso is cleared for the next one.
    pca = lab.view_figure("sw-pca")
    heatmap_before = lab.image_sources(heatmap)
    heatmap_pixels_before = heatmap.screenshot()
    lab.drag(pca, LEFT_HALF)
    expect(status).not_to_have_text(f"{N_ZEROS} samples selected · unit {target}")
    n_left, unit_after_lasso = selected_and_unit(status.inner_text())
    assert 0 < n_left < N_DIGITS
    assert unit_after_lasso == target  # selecting samples does not refocus
    lab.wait_for_image_change(heatmap, heatmap_before)
    assert changed_pixels(heatmap_pixels_before, heatmap.screenshot()) > 1000
    expect(pca.locator(".lassoselector path")).to_have_count(0)
    assert_heatmap_columns_follow_enrichment(lab)
    lab.screenshot("after-lasso")

    # A second lasso replaces the selection (it does not add to the first one).
    lab.drag(pca, RIGHT_HALF)
    expect(status).not_to_have_text(f"{n_left:,} samples selected · unit {target}")
    n_right, _ = selected_and_unit(status.inner_text())
    assert n_right < N_DIGITS - ON_THE_EDGE
    assert abs(n_left + n_right - N_DIGITS) <= ON_THE_EDGE
    lab.assert_no_errors()
