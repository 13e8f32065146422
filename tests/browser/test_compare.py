"""CompareView in a real JupyterLab: the scatter draws one point per matched pair, and a
click on a point focuses that unit (the panel under the scatter names it, in the colour of
its kind), with no console errors.

Fixture: tests/browser/fixtures/compare.ipynb (two small TopK SAEs on digits, 32 vs 64 units).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from .lab_page import LabPage

pytestmark = pytest.mark.browser

N_UNITS_A = 32
# KIND_COLORS of sae_widgets.widgets.compare, as the browser reports computed fills.
KIND_OF_FILL = {
    "rgb(76, 120, 168)": "shared",
    "rgb(245, 133, 24)": "split",
    "rgb(84, 162, 75)": "merge",
    "rgb(178, 121, 162)": "new",
}
PANEL_TITLE = re.compile(r"^A32 unit (\d+) \((shared|split|merge|new)\) and its best matches")

# Every drawn dot of the figure: centre (page px), computed fill, and whether a click at its
# centre lands on it (not on a dot drawn over it).
_DOTS_JS = """figure => [...figure.querySelectorAll('path.dot')].map((dot, i) => {
    const box = dot.getBoundingClientRect();
    const x = box.x + box.width / 2, y = box.y + box.height / 2;
    return {i, x, y, fill: getComputedStyle(dot).fill, visible: box.width > 0,
            on_top: document.elementFromPoint(x, y) === dot};
})"""


def dots(figure: Any) -> list[dict[str, Any]]:
    return [d for d in figure.evaluate(_DOTS_JS) if d["visible"]]


def test_compare_view_draws_and_a_click_focuses_the_unit(lab: LabPage) -> None:
    lab.open_notebook("compare.ipynb")
    lab.run_all_cells(timeout_s=300)
    lab.assert_no_errors()
    lab.assert_figures_rendered(min_count=1)
    view = lab.view("sw-compare")
    expect(view).to_have_count(1)
    figure = lab.view_figure("sw-compare")
    expect(view.locator(".widget-html").first).to_contain_text(" shared, ")

    points = [d for d in dots(figure) if d["fill"] in KIND_OF_FILL]
    assert len(points) == N_UNITS_A  # one per Hungarian pair: every unit of the narrower SAE
    title = view.locator(".widget-html", has_text=PANEL_TITLE)
    expect(title).to_have_count(0)  # nothing focused yet: the panel is hidden
    lab.screenshot("before-click")

    clickable = [d for d in points if d["on_top"]]
    assert len(clickable) >= 2
    focused = []
    for point in (clickable[0], clickable[-1]):
        lab.page.mouse.click(point["x"], point["y"])
        expect(title).to_have_count(1)
        expect(title).to_have_text(re.compile(rf"^A32 unit \d+ \({KIND_OF_FILL[point['fill']]}\)"))
        match = PANEL_TITLE.match(title.inner_text())
        assert match is not None
        focused.append(int(match[1]))
        # the focus ring is drawn around the clicked point
        rings = [d for d in dots(figure) if d["fill"] == "none"]
        assert len(rings) == 1
        assert abs(rings[0]["x"] - point["x"]) < 2 and abs(rings[0]["y"] - point["y"]) < 2
    assert focused[0] != focused[1] or clickable[0]["i"] == clickable[-1]["i"]

    # A match's button focuses that unit of B: B's panel appears, naming it.
    button = view.locator("button:visible", has_text=re.compile(r"^focus B64 unit \d+$")).first
    unit_b = int(button.inner_text().rsplit(" ", 1)[1])
    button.click()
    expect(
        view.locator(".widget-html", has_text=re.compile(rf"^B64 unit {unit_b} \("))
    ).to_have_count(1)
    lab.screenshot("after-clicks", target=view)
    lab.assert_no_errors()
