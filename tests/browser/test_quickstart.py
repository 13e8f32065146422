"""The quickstart notebook in a real JupyterLab: it runs, draws, and its dashboard responds
to a click and a brush the way a user would make them."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .lab_page import BQPLOT_BRUSH_BUG, LabPage, changed_pixels

pytestmark = pytest.mark.browser

STATUS = re.compile(r"^[\d,]+ samples selected · unit (\d+|none)$")
INSPECTOR_STATS = re.compile(r"^unit \d+ · fires on ")
# Titles as the widgets draw them ("activations at the slider value" is the probe's figure).
HEATMAP_TITLE = re.compile(r"^activations(:.*)?$")
N_DIGITS = 1797
N_ZEROS = 178


def selected_and_unit(text: str) -> tuple[int, int | None]:
    """(number of samples, focused unit) from the dashboard's status line."""
    match = re.fullmatch(r"([\d,]+) samples selected · unit (\d+|none)", text.strip())
    assert match is not None, f"unexpected status line {text!r}"
    unit = None if match[2] == "none" else int(match[2])
    return int(match[1].replace(",", "")), unit


def test_quickstart_dashboard_renders_and_follows_clicks_and_brush(lab: LabPage) -> None:
    lab.open_notebook("01_quickstart.ipynb")
    lab.run_all_cells(timeout_s=600)
    lab.assert_no_errors()
    # Two training monitors and the dashboard's views; every one of them drew something.
    titles = [info.title for info in lab.assert_figures_rendered(min_count=10)]
    assert any(title.startswith("PCA") for title in titles), titles
    assert any(HEATMAP_TITLE.match(title) for title in titles), titles

    status = lab.page.locator(".widget-html", has_text=STATUS)
    expect(status).to_have_count(1)
    # The notebook's last cell selected every zero and focused a unit, from Python.
    n_selected, focused = selected_and_unit(status.inner_text())
    assert n_selected == N_ZEROS and focused is not None
    inspector_stats = lab.page.locator(".widget-html", has_text=INSPECTOR_STATS)
    expect(inspector_stats).to_have_text(re.compile(rf"^unit {focused} · "))
    lab.screenshot("after-run-all")

    # Click a unit button (enriched, nearest or co-firing) other than the focused unit: the
    # inspector's text and decoder picture, and the status line, switch to it.
    decoder = lab.figure(re.compile(r"^decoder\s+\|\s+encoder$"))
    decoder_before = lab.image_sources(decoder)
    decoder_pixels_before = decoder.screenshot()
    buttons = lab.page.locator("button[title^='focus unit']:visible")
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

    dashboard = lab.page.locator(".jp-OutputArea-output").filter(has=status)
    lab.screenshot("dashboard", target=dashboard, docs_name="dashboard.png", viewport_height=2400)

    # Brush the middle of the PCA plot: the status line and the heatmap rows follow.
    pca = lab.figure(re.compile(r"^PCA"))
    heatmap = lab.figure(HEATMAP_TITLE)
    heatmap_before = lab.image_sources(heatmap)
    assert heatmap_before, "the heatmap shows no picture"
    heatmap_pixels_before = heatmap.screenshot()
    before = f"{N_ZEROS} samples selected · unit {target}"
    lab.brush(pca, start=(0.25, 0.25), end=(0.75, 0.75))
    try:
        expect(status).not_to_have_text(before)
    except AssertionError:
        # BQPLOT_BRUSH_BUG: the rectangle never reaches the kernel, so the PCA view offers a
        # lasso beside it; select the same square with that.
        lab.screenshot("rectangle-ignored")
        lasso_mode = lab.page.get_by_role("button", name="lasso", exact=True)
        if lasso_mode.count() == 0:
            pytest.xfail(BQPLOT_BRUSH_BUG)
        lasso_mode.click()
        pca.locator("g.lassoselector").wait_for(state="attached")
        square = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75), (0.25, 0.25)]
        lab.drag(pca, square)
        expect(status).not_to_have_text(before)
    n_brushed, unit_after_brush = selected_and_unit(status.inner_text())
    assert 0 < n_brushed < N_DIGITS
    assert unit_after_brush == target  # selecting samples does not refocus
    lab.wait_for_image_change(heatmap, heatmap_before)
    assert changed_pixels(heatmap_pixels_before, heatmap.screenshot()) > 1000
    lab.screenshot("after-brush")
    lab.assert_no_errors()
