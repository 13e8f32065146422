"""The SteeringView in a real JupyterLab: it draws, and the alpha slider moved with the keyboard
changes the class-probability bars the page draws, in agreement with the kernel."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .lab_page import LabPage

pytestmark = pytest.mark.browser

_BAR_HEIGHTS_JS = """figure => [...figure.querySelectorAll('.bargroup')].map(
    group => [...group.querySelectorAll('rect')].map(r => r.getBoundingClientRect().height))"""


def _steered_heights(lab: LabPage) -> list[float]:
    """Height (px) of each class's "at α" bar, in class order."""
    groups = lab.figure("class probabilities at α (grey: unedited)").evaluate(_BAR_HEIGHTS_JS)
    return [group[1] for group in groups]


def test_the_alpha_slider_changes_the_drawn_class_probabilities(lab: LabPage) -> None:
    lab.open_notebook("steering.ipynb")
    lab.run_all_cells(timeout_s=300)
    lab.assert_no_errors()
    titles = {info.title for info in lab.assert_figures_rendered(min_count=3)}
    assert {
        "class probabilities at α (grey: unedited)",
        "class probabilities as α varies",
        "the unit's activation after the edit",
    } <= titles
    expect(lab.view("sw-steering")).to_contain_text(re.compile(r"Steering unit \d+"))

    before = _steered_heights(lab)
    assert len(before) == 10 and max(before) > 0
    state = lab.page.locator(".sw-test-steered")
    expect(state).to_have_text(re.compile(r"^steered: alpha=0\.000 "))  # unit focused, α 0
    handle = lab.view("sw-steering").locator(".noUi-handle").first
    handle.focus()
    handle.press("End")  # alpha to its largest value
    expect(state).to_have_text(re.compile(r"^steered: alpha=[1-9]"))
    lab.page.wait_for_function(
        f"([figure, before]) => JSON.stringify(({_BAR_HEIGHTS_JS})(figure).map(g => g[1]))"
        " !== JSON.stringify(before)",
        arg=[lab.figure("class probabilities at α (grey: unedited)").element_handle(), before],
        timeout=30_000,
        polling=250,
    )
    after = _steered_heights(lab)
    top = int(state.inner_text().rsplit("=", 1)[-1])
    assert after.index(max(after)) == top  # the page draws what the kernel computed
    lab.screenshot("steering", target=lab.view("sw-steering"))
    lab.assert_no_errors()
