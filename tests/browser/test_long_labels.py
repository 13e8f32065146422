"""Long label names in the page (fixtures/long_labels.ipynb: digits whose ten classes have
60-character names, alike in their first 40): the unit table's rows and the inspector's bar
ticks shorten them, and hovering shows them whole: the table's title (the browser's tooltip)
names the focused unit's label, the label chart's bqplot tooltip the hovered bar's label and
share (filled by the kernel on hover); no page errors."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Locator, expect

from .lab_page import LabPage

pytestmark = pytest.mark.browser

TITLE = re.compile(r"^unit (\d+): mostly label (.+)$")
SHARE = re.compile(r"^(.+): (\d+)% of the samples it fires on$")

# The title the browser shows as its tooltip at a point: that of the element under the
# pointer, or of its nearest ancestor that has one.
_TITLE_AT_JS = """
([x, y]) => {
  for (let node = document.elementFromPoint(x, y); node; node = node.parentElement) {
    if (node.title) return node.title;
  }
  return '';
}
"""


def hover_title(lab: LabPage, target: Locator) -> str:
    box = target.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    lab.page.mouse.move(x, y, steps=4)
    return str(lab.page.evaluate(_TITLE_AT_JS, [x, y]))


def table_title_names_the_focused_units_label(lab: LabPage, names: list[str]) -> None:
    """The rows shorten the names; hovering the list reads the focused unit's whole label,
    and focusing another row (a click) names that unit's."""
    rows = lab.view("sw-unit-table").locator("select")
    expect(rows).to_have_count(1)
    rows.scroll_into_view_if_needed()
    shown = rows.locator("option").all_inner_texts()
    assert shown and all(name not in row for row in shown for name in names), shown[:3]
    assert all("…" in row for row in shown), shown[:3]

    focused = set()
    for row in (1, 4):
        option = rows.locator("option").nth(row)
        option.click()
        unit = int(option.inner_text().split()[0])
        expect(rows.locator("option:checked")).to_have_text(option.inner_text())
        lab.page.wait_for_function(
            "([el, unit]) => el.title.startsWith(`unit ${unit}:`)",
            arg=[rows.element_handle(), unit],
        )
        match = TITLE.fullmatch(hover_title(lab, option))
        assert match is not None and int(match[1]) == unit
        assert match[2] in names, f"{match[2]!r} is not a whole label name"
        focused.add(unit)
    assert len(focused) == 2


def bar_tooltips_name_the_labels(lab: LabPage, names: list[str]) -> None:
    """Hovering a bar of the label chart shows its whole name and share in a tooltip (its
    tick shows 14 characters: the name's start and end); the next bar hovered shows its own name."""
    heading = lab.page.locator("text.mainheading", has_text="labels of the samples it fires")
    chart = lab.view("sw-inspector").locator(".bqplot.figure").filter(has=heading)
    expect(chart).to_have_count(1)
    chart.scroll_into_view_if_needed()
    ticks = chart.locator(".axis .tick text").all_text_contents()
    # the names differ only at their ends: each tick keeps its start and end ("handwr… no. #3")
    label_ticks = [tick for tick in ticks if "…" in tick]  # not the share axis's numbers
    assert len(set(label_ticks)) == len(names), ticks
    bars = chart.locator("rect.bar")
    expect(bars).to_have_count(len(names))
    heights = [box["height"] if box else 0.0 for box in (b.bounding_box() for b in bars.all())]
    tallest = sorted(range(len(heights)), key=lambda i: -heights[i])[:2]
    assert heights[tallest[1]] > 4, f"too few bars to hover: heights {heights}"
    tooltip = lab.page.locator(".bqplot_mark_tooltip").filter(visible=True)
    for slot in tallest:
        box = bars.nth(slot).bounding_box()
        assert box is not None
        lab.page.mouse.move(box["x"] - 30, box["y"] + box["height"] / 2)  # off the bar first
        lab.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
        expect(tooltip).to_have_count(1)
        # The kernel fills the tooltip on hover: wait for this bar's name, not the last one's.
        expect(tooltip).to_have_text(re.compile(rf"^{re.escape(names[slot])}: \d+% "))
        match = SHARE.fullmatch(tooltip.inner_text().strip())
        assert match is not None and 0 < int(match[2]) <= 100, tooltip.inner_text()
    lab.page.mouse.move(5, 5)  # away: the tooltip goes
    expect(tooltip).to_have_count(0)


def test_long_label_names_shown_whole_on_hover(lab: LabPage) -> None:
    lab.open_notebook("long_labels.ipynb")
    lab.run_all_cells(timeout_s=240)
    lab.assert_no_errors()
    names = json.loads(lab.page.locator(".label-names textarea").input_value())
    assert len(names) == 10 and all(len(name) == 60 for name in names)
    table_title_names_the_focused_units_label(lab, names)
    bar_tooltips_name_the_labels(lab, names)
    lab.screenshot("long-labels")
    lab.assert_no_errors()
