"""The browser infrastructure itself: a notebook runs, its figures draw, widgets talk back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .lab_page import LabPage

pytestmark = pytest.mark.browser


def test_smoke_notebook_renders_svg_webgl_and_round_trips_a_click_and_a_lasso(
    lab: LabPage,
) -> None:
    lab.open_notebook("smoke.ipynb")
    lab.run_all_cells(timeout_s=180)
    lab.assert_no_errors()

    figures = {info.title: info for info in lab.assert_figures_rendered(min_count=3)}
    assert set(figures) == {"svg-scatter", "lasso-scatter", "brush-scatter"}
    # The SVG scatter draws one element per point; the WebGL one (jupyter-scatter, an
    # anywidget) paints its canvas instead.
    assert figures["svg-scatter"].svg_marks >= 200
    gl_scatter = lab.page.locator(".gl-scatter")
    gl_scatter.scroll_into_view_if_needed()  # it makes its canvas once on screen
    expect(gl_scatter.locator("canvas").first).to_be_visible()
    assert lab.canvas_painted_pixels(gl_scatter) > 200
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

    # A lasso drawn with the mouse: the kernel counts the points it encloses. A square over
    # the middle 60% of a normal cloud of 200 points holds some of them, not all.
    lassoed = lab.page.locator(".widget-label", has_text=re.compile(r"^lassoed: "))
    expect(lassoed).to_have_text("lassoed: none")
    square = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8), (0.2, 0.2)]
    lab.drag(lab.figure("lasso-scatter"), square)
    expect(lassoed).to_have_text(re.compile(r"^lassoed: \d+$"))
    assert 20 < int(lassoed.inner_text().split()[-1]) < 200

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

    # An exception in a widget callback shows in no cell output, only in the log console.
    lab.page.get_by_role("button", name="fail-on-click").click()
    expect(lab.page.locator(".jp-LogConsoleStatusItem")).to_have_text(re.compile(r"[1-9]"))
    callback_errors = [error for error in lab.errors() if error.startswith("log console:")]
    assert len(callback_errors) == 1
    assert "ZeroDivisionError" in callback_errors[0] and "widget callback" in callback_errors[0]


def test_a_brush_drawn_with_the_mouse_reaches_the_kernel(lab: LabPage) -> None:
    # Failed with bqplot-gl installed beside bqplot 0.13.1 (its d3 won JupyterLab's share
    # scope; bqplot #1693): only brushing=True ever reached the kernel.
    lab.open_notebook("smoke.ipynb")
    lab.run_all_cells(timeout_s=180)
    label = lab.page.locator(".widget-label", has_text=re.compile(r"^brushed: "))
    expect(label).to_have_text("brushed: none")
    lab.brush(lab.figure("brush-scatter"), start=(0.2, 0.2), end=(0.8, 0.8))
    expect(label).to_have_text(re.compile(r"^brushed: [1-9]\d*$"))
