"""The quickstart notebook in a real JupyterLab: it runs, draws, and its dashboard responds
to a brush and a click the way a user would make them."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .lab_page import LabPage, changed_pixels

pytestmark = pytest.mark.browser

STATUS = re.compile(r"^[\d,]+ samples selected · unit (\d+|none)$")
INSPECTOR_STATS = re.compile(r"^unit \d+ · fires on ")


def selected_and_unit(text: str) -> tuple[int, int | None]:
    """(number of samples, focused unit) from the dashboard's status line."""
    match = re.fullmatch(r"([\d,]+) samples selected · unit (\d+|none)", text.strip())
    assert match is not None, f"unexpected status line {text!r}"
    unit = None if match[2] == "none" else int(match[2])
    return int(match[1].replace(",", "")), unit


def test_quickstart_dashboard_renders_and_follows_brush_and_clicks(lab: LabPage) -> None:
    lab.open_notebook("01_quickstart.ipynb")
    lab.run_all_cells(timeout_s=600)
    lab.assert_no_errors()
    # Two training monitors and the dashboard's views; every one of them drew something.
    figures = lab.assert_figures_rendered(min_count=10)
    titles = [info.title for info in figures]
    assert any(title.startswith("PCA") for title in titles), titles
    assert any(title.startswith("activations") for title in titles), titles

    status = lab.page.locator(".widget-html", has_text=STATUS)
    expect(status).to_have_count(1)
    # The notebook's last cell selected every zero (178 of them) and focused a unit.
    n_selected, focused = selected_and_unit(status.inner_text())
    assert n_selected == 178 and focused is not None
    lab.screenshot("after-run-all")

    # Brush the middle of the PCA plot: the status line and the heatmap rows follow.
    pca = lab.figure(re.compile(r"^PCA"))
    heatmap = lab.figure(re.compile(r"^activations: click a column"))
    heatmap_before = lab.image_sources(heatmap)
    assert heatmap_before, "the heatmap shows no picture"
    heatmap_pixels_before = heatmap.screenshot()
    lab.brush(pca, start=(0.25, 0.25), end=(0.75, 0.75))
    expect(status).not_to_have_text(f"{n_selected} samples selected · unit {focused}")
    n_brushed, unit_after_brush = selected_and_unit(status.inner_text())
    assert 0 < n_brushed < 1797 and n_brushed != n_selected
    assert unit_after_brush == focused  # a brush selects samples; it does not refocus
    lab.wait_for_image_change(heatmap, heatmap_before)
    assert changed_pixels(heatmap_pixels_before, heatmap.screenshot()) > 1000
    lab.screenshot("after-brush")

    # Click a unit button (enriched, nearest or co-firing unit) other than the focused one:
    # the inspector switches to it, and so does the status line.
    inspector_stats = lab.page.locator(".widget-html", has_text=INSPECTOR_STATS)
    expect(inspector_stats).to_have_text(re.compile(rf"^unit {focused} · "))
    decoder = lab.figure(re.compile(r"^decoder\s+\|\s+encoder$"))
    decoder_before = lab.image_sources(decoder)
    decoder_pixels_before = decoder.screenshot()
    other_units = lab.page.locator("button[title^='focus unit']:visible").filter(
        has_not_text=re.compile(rf"^{focused}\b")
    )
    button = other_units.first
    target = int(str(button.get_attribute("title")).removeprefix("focus unit "))
    button.click()
    expect(inspector_stats).to_have_text(re.compile(rf"^unit {target} · "))
    expect(status).to_have_text(f"{n_brushed:,} samples selected · unit {target}")
    lab.wait_for_image_change(decoder, decoder_before)
    assert changed_pixels(decoder_pixels_before, decoder.screenshot()) > 100
    lab.assert_no_errors()

    dashboard = lab.page.locator(".jp-OutputArea-output").filter(has=status)
    lab.screenshot("dashboard", target=dashboard, docs_name="dashboard.png", viewport_height=2200)
