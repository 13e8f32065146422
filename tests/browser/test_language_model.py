"""Notebook 05 in a real JupyterLab: SmolLM2 token activations, and a dashboard whose PCA
points are tokens. A lasso over token points changes the other views; nothing errs.

Views are found by their CSS classes (sw-status, sw-pca, sw-heatmap, sw-inspector,
sw-top-tokens, sw-token).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .lab_page import LabPage

pytestmark = pytest.mark.browser

LEFT_HALF = [(0.01, 0.01), (0.5, 0.01), (0.5, 0.99), (0.01, 0.99), (0.01, 0.01)]
STATUS = re.compile(r"([\d,]+) samples? selected · unit (\d+|none)")


def test_language_model_notebook_and_token_dashboard(lab: LabPage) -> None:
    lab.open_notebook("05_language_model.ipynb")
    lab.run_all_cells(timeout_s=900)
    lab.assert_no_errors()
    lab.assert_figures_rendered(min_count=3)
    # The inspector shows tokens in context, as spans with the activation on hover.
    top_tokens = lab.view("sw-top-tokens").first
    expect(top_tokens.locator(".sw-token").first).to_have_attribute(
        "title", re.compile(r"^activation ")
    )
    status = lab.view("sw-status")
    expect(status).to_have_count(1)
    expect(status).to_have_text(STATUS)
    before = status.inner_text()

    heatmap = lab.view_figure("sw-heatmap")
    heatmap_before = lab.image_sources(heatmap)
    pca = lab.view_figure("sw-pca")
    lab.drag(pca, LEFT_HALF)  # lasso tokens: the status line and the heatmap rows follow
    expect(status).not_to_have_text(before)
    match = STATUS.search(status.inner_text())
    assert match is not None and int(match[1].replace(",", "")) > 0
    lab.wait_for_image_change(heatmap, heatmap_before)
    # Heatmap rows are named by their token in context.
    labels = heatmap.locator("g.axis .tick text").evaluate_all(
        "texts => texts.map(t => t.textContent || '')"
    )
    assert any("⟦" in label for label in labels), labels
    lab.screenshot("05-dashboard-after-lasso")
    lab.assert_no_errors()
