"""The browser infrastructure itself: a notebook runs, its figures draw, widgets talk back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .lab_page import LabPage

pytestmark = pytest.mark.browser


def test_smoke_notebook_renders_svg_webgl_and_round_trips_a_click(lab: LabPage) -> None:
    lab.open_notebook("smoke.ipynb")
    lab.run_all_cells(timeout_s=180)
    lab.assert_no_errors()

    figures = {info.title: info for info in lab.assert_figures_rendered(min_count=2)}
    assert set(figures) == {"svg-scatter", "gl-scatter"}
    # The SVG scatter draws one element per point; the WebGL one draws none and paints its
    # canvas instead (200 dots of default size cover far more than 500 pixels).
    assert figures["svg-scatter"].svg_marks >= 200
    assert figures["gl-scatter"].svg_marks == 0
    assert lab.canvas_painted_pixels(lab.figure("gl-scatter")) > 500
    assert lab.canvas_painted_pixels(lab.figure("svg-scatter")) == 0

    # The label's new text is computed by the Python callback: a browser -> kernel -> browser
    # round trip through the widget comm.
    label = lab.page.locator(".widget-label", has_text=re.compile(r"^clicks: \d+$"))
    expect(label).to_have_text("clicks: 0")
    button = lab.page.get_by_role("button", name="smoke-click")
    button.click()
    expect(label).to_have_text("clicks: 1")
    button.click()
    expect(label).to_have_text("clicks: 2")

    lab.screenshot("smoke")
    lab.screenshot("smoke-figures", target=lab.page.locator(".widget-hbox").first)
    lab.assert_no_errors()


def test_an_error_output_ends_the_wait_and_is_reported(lab: LabPage) -> None:
    lab.open_notebook("fails_on_purpose.ipynb")
    # Run All stops at the failing cell; the wait must end there instead of timing out.
    lab.run_all_cells(timeout_s=60)
    errors = lab.errors()
    assert len(errors) == 1
    assert "ValueError" in errors[0] and "deliberate failure" in errors[0]
    with pytest.raises(AssertionError, match="deliberate failure"):
        lab.assert_no_errors()
    expect(lab.page.get_by_text("before the error", exact=True)).to_be_visible()
    expect(lab.page.get_by_text("never reached", exact=True)).to_have_count(0)
