"""What a user does to the quickstart's dashboard, in Notebook 7 and in JupyterLab's themes.

In Notebook 7: a rectangle and a lasso on the PCA plot, the probe slider dragged, a heatmap
column and a unit-list row clicked, the ToggleButtons changed, the window made 500 px and
1,900 px wide, the output collapsed and expanded, the dashboard cell run again, the kernel
restarted and every cell run again. After each, what the page shows (status line,
inspector, PCA count, active buttons, slider, unit list) equals the kernel's state, read
back by running a cell that prints it; after the clicks, each window width, the expanded
output, the new run and the restart: no page or console error, every view laid out and
visible, no NaN or Infinity in any SVG. At 500 and 1,900 px nothing in the dashboard lies
outside the notebook's output area or scrolls sideways, and each figure's plot fits in it.

In JupyterLab, on the light and the dark theme: every text of the dashboard has a contrast
against what it is drawn on of at least 4.5 (WCAG AA) in HTML (labels, buttons, lists), and 3
in figures (axes, captions: WCAG's least for graphics; the gallery's grey captions, chosen for
both themes, measure 4.0 on the light one and no one grey reaches 4.5 on both).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Error, Locator, expect

from .lab_page import ACTIVE_NOTEBOOK, LabPage
from .lab_server import LabServer
from .test_browser_round8 import _NON_FINITE_JS, NEGATIVE_RECT, notebook_of_cells
from .test_notebook7 import click_heatmap_column
from .test_views import SQUARE, notebook76_shortcuts_race, select_tool, use_theme

pytestmark = pytest.mark.browser

NOTEBOOK = "round9_interactions.ipynb"
CELLS = [
    """\
import json

import torch

import sae_widgets as sw

torch.manual_seed(0)
torch.set_num_threads(2)  # the test machine's cores are shared
ds = sw.datasets.digits()  # the quickstart's data and SAE, trained briefly
sae = sw.SAE(n_units=128, activation="topk", k=8, epochs=1, batch_size=256, seed=0)
sae.fit(ds, progress=False)
ex = sw.Explorer(sae, ds)""",
    """\
dashboard = ex.dashboard()
dashboard""",
    """\
print("STATE " + json.dumps({
    "n": len(ex.selection.samples), "unit": ex.selection.unit,
    "probe_value": ex.selection.probe_value,
    "color_by": dashboard.brush.color_by.value, "select_with": dashboard.brush.select_with.value,
    "mode": dashboard.brush.mode.value, "sort_by": dashboard.table.sort_by.value,
}))""",
]
STATE_CELL = 2
FIGURE_VIEWS = ("sw-pca", "sw-heatmap", "sw-inspector", "sw-probe")  # each with a main figure
VIEWS = ("sw-status", "sw-unit-table", *FIGURE_VIEWS)
STATUS = re.compile(r"^([\d,]+) samples? selected · unit (\d+|none)$")

# What the dashboard shows of the state, read from the page.
_PAGE_STATE_JS = """
dash => {
  const texts = sel => [...dash.querySelectorAll(sel)].map(n => n.textContent.trim());
  const status = dash.querySelector('.sw-status').textContent.trim();
  const stats = texts('.sw-inspector .widget-html').find(t => /^unit \\d+ · /.test(t)) || '';
  const rows = dash.querySelector('.sw-unit-rows select');
  const row = rows && rows.selectedIndex >= 0 ? rows.options[rows.selectedIndex].text : '';
  return {
    status, stats, row: row.trim(),
    pca_count: texts('.sw-pca .widget-html').find(t => /selected$/.test(t)) || '',
    pca_active: texts('.sw-pca .widget-toggle-button.mod-active'),
    table_active: texts('.sw-unit-table .widget-toggle-button.mod-active'),
    readout: texts('.sw-probe .widget-readout')[0],
  };
}
"""

# HTML boxes of the dashboard outside its output area (SVG internals are left to the figure
# check), and its elements that scroll sideways, as text.
_OVERFLOW_JS = """
dash => {
  const area = dash.closest('.jp-OutputArea-output').getBoundingClientRect();
  const outside = el => {
    const box = el.getBoundingClientRect();
    return (box.width > 0 || box.height > 0)
      && (box.left < area.left - 0.5 || box.right > area.right + 0.5);
  };
  const where = el => {
    const view = el.closest('.sw-pca, .sw-heatmap, .sw-inspector, .sw-probe, .sw-unit-table');
    const box = el.getBoundingClientRect();
    return `${view ? [...view.classList].pop() : 'dashboard'}: <${el.tagName.toLowerCase()} `
      + `class="${(el.getAttribute('class') || '').slice(0, 60)}"> "${el.textContent.slice(0, 30)}"`
      + ` [${box.left.toFixed(0)}, ${box.right.toFixed(0)}] in [${area.left}, ${area.right}]`;
  };
  const html = [...dash.querySelectorAll('*')].filter(el => !(el instanceof SVGElement));
  const over = html.filter(el => outside(el) && !outside(el.parentElement)).map(where);
  const scrolls = html.filter(el => el.scrollWidth > el.clientWidth + 1
      && ['auto', 'scroll'].includes(getComputedStyle(el).overflowX))
    .map(el => `${where(el)} scrolls: ${el.scrollWidth} > ${el.clientWidth} px`);
  return over.concat(scrolls);
}
"""

# A figure's box, and its plot area's, as [left, right, width].
_FIGURE_FIT_JS = """
figure => {
  const box = figure.getBoundingClientRect();
  const plot = figure.querySelector('rect.plotarea_events').getBoundingClientRect();
  return {figure: [box.left, box.right, box.width], plot: [plot.left, plot.right, plot.width]};
}
"""

# Contrast (WCAG 2) of every text of `root` with a letter or digit against what is drawn under
# it: the nearest opaque backgrounds of its ancestors, composited; SVG text by its fill.
_CONTRASTS_JS = """
root => {
  const rgba = c => { const v = (c.match(/[\\d.]+/g) || []).map(Number);
    return v.length < 3 ? null : [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; };
  const lum = rgb => rgb.map(v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const over = (top, under) => under.map((v, i) => top[i] * top[3] + v * (1 - top[3]));
  const background = el => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      if (node instanceof SVGElement) continue;
      const c = rgba(getComputedStyle(node).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    return layers.reverse().reduce((under, top) => over(top, under), [255, 255, 255]);
  };
  const found = [];
  for (const el of root.querySelectorAll('*')) {
    const text = [...el.childNodes].filter(n => n.nodeType === 3)
      .map(n => n.textContent).join(' ').trim();
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (!/[\\p{L}\\p{N}]/u.test(text) || box.width === 0 || style.visibility === 'hidden'
        || el.closest('.bqplot_mark_tooltip')) continue;
    const svg = el instanceof SVGElement;
    const fg = rgba(svg && style.fill !== 'none' ? style.fill : style.color);
    if (!fg) continue;
    const bg = background(el);
    const [a, b] = [lum(over(fg, bg)), lum(bg)].sort((x, y) => y - x);
    found.push({text: text.slice(0, 30), ratio: (a + 0.05) / (b + 0.05),
                color: style.color, fill: style.fill, background: bg.map(Math.round), svg});
  }
  return found;
}
"""


@pytest.fixture
def notebook(lab_server: LabServer) -> Iterator[str]:
    yield from notebook_of_cells(lab_server, NOTEBOOK, CELLS)


def cell(lab: LabPage, index: int) -> Locator:
    return lab.page.locator(f"{ACTIVE_NOTEBOOK} .jp-Notebook .jp-Cell").nth(index)


def run_cell(lab: LabPage, index: int) -> None:
    """Click into a code cell and press Shift+Enter; wait for its new execution count."""
    prompt = cell(lab, index).locator(".jp-InputPrompt")
    before = prompt.inner_text()
    cell(lab, index).locator(".jp-InputArea-editor").click()
    lab.page.keyboard.press("Shift+Enter")
    lab.page.wait_for_function(
        "([el, before]) => el.textContent !== before && /\\[\\d+\\]/.test(el.textContent)",
        arg=[prompt.element_handle(), before],
        timeout=60_000,
    )


def kernel_state(lab: LabPage) -> dict[str, Any]:
    """The Selection and the dashboard's controls as the kernel holds them (the state cell's
    print, run now)."""
    run_cell(lab, STATE_CELL)
    output = cell(lab, STATE_CELL).locator(".jp-OutputArea-output").last.inner_text()
    state: dict[str, Any] = json.loads(output.split("STATE ", 1)[1])
    return state


def dashboard(lab: LabPage) -> Locator:
    return lab.page.locator(f"{ACTIVE_NOTEBOOK} .sw-dashboard")


def assert_page_agrees_with_kernel(lab: LabPage) -> dict[str, Any]:
    """Every view shows the kernel's selection, focused unit, probe value and controls."""
    state = kernel_state(lab)
    shown = dashboard(lab).evaluate(_PAGE_STATE_JS)
    n, unit = f"{state['n']:,}", "none" if state["unit"] is None else str(state["unit"])
    assert shown["status"] == f"{n} sample{'' if state['n'] == 1 else 's'} selected · unit {unit}"
    assert shown["stats"].startswith(f"unit {unit} · "), shown["stats"]
    assert shown["row"].split()[0] == unit, shown["row"]  # the list marks the focused unit
    count = "no sample" if state["n"] == 0 else f"{n} sample"
    assert shown["pca_count"].startswith(count), shown["pca_count"]
    labels = {"label": "label", "activation": "unit activation"}
    assert shown["pca_active"] == [
        labels.get(state["color_by"], state["color_by"]),
        state["select_with"],
        state["mode"],
    ]
    assert shown["table_active"] == [state["sort_by"]]
    if state["probe_value"] is not None:
        assert float(shown["readout"]) == pytest.approx(state["probe_value"])
    return state


def old_figure_sends_after_restart(error: Error) -> bool:
    """An open defect, left out of the error checks (this message, sent from this place
    only): after "Restart Kernel and Run All", a mouse event on a figure of the old output
    (the pointer rests where the dialog's button was) makes bqplot send its custom message
    (Mark.event_dispatcher -> custom_msg_sender) on the comm the restart disposed, and
    jupyterlab-manager's send throws "Cannot send" uncaught (3 runs of 3 in Notebook 7).
    Not fixed in this round: our marks' click and hover handlers are what a user needs."""
    stack = error.stack or ""
    return (
        error.message == "Cannot send"
        and "custom_msg_sender" in stack
        and "/extensions/bqplot/" in stack
    )


def page_errors(lab: LabPage, restarted: bool = False) -> list[str]:
    """Errors in the page (less Notebook 7.6's start-up race, round 8's open anywidget
    defect and, after a kernel restart, `old_figure_sends_after_restart`) and console errors
    (less bqplot's negative <rect> of a hidden figure)."""
    errors = lab.errors(
        ignored_page_error=lambda e: (
            notebook76_shortcuts_race(e) or (restarted and old_figure_sends_after_restart(e))
        )
    )
    console = [
        line
        for line in lab.console
        if line.startswith("[error]") and not NEGATIVE_RECT.search(line)
    ]
    return errors + console


def assert_sound(lab: LabPage, restarted: bool = False) -> None:
    """No error; one dashboard, each view visible with a size, its main figure drawn at a
    size; no NaN or Infinity in any SVG of the notebook."""
    errors = page_errors(lab, restarted)
    assert not errors, "errors in the page:\n\n" + "\n\n".join(errors)
    expect(dashboard(lab)).to_have_count(1)
    for view in VIEWS:
        element = lab.view(view)
        expect(element).to_be_visible()
        box = element.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0, (view, box)
        if view in FIGURE_VIEWS:
            figure = lab.view_figure(view)
            fbox = figure.bounding_box()
            assert fbox is not None and fbox["width"] > 100 and fbox["height"] > 100, (view, fbox)
            assert figure.locator("rect.plotarea_events").count() == 1
    bad = lab.page.locator(ACTIVE_NOTEBOOK).evaluate(_NON_FINITE_JS)
    assert not bad, f"non-finite SVG values: {bad}"


def plot_fits(figure: Locator) -> bool:
    """A figure's plot area is laid out (over 50 px wide) inside the figure's box."""
    fit = figure.evaluate(_FIGURE_FIT_JS)
    (left, right, _), (p_left, p_right, p_width) = fit["figure"], fit["plot"]
    return bool(p_width > 50 and left - 0.5 <= p_left and p_right <= right + 0.5)


def assert_fits(lab: LabPage, width: int) -> dict[str, float]:
    """At a window `width` px wide: no box of the dashboard outside the output area and none
    scrolling sideways; each main figure's plot area inside the figure once it was on
    screen (bqplot lays out only a figure in view). Returns each figure's width."""
    lab.page.set_viewport_size({"width": width, "height": 900})
    lab.page.wait_for_function(f"() => window.innerWidth === {width}")
    widths = {}
    for view in FIGURE_VIEWS:
        figure = lab.view_figure(view)
        figure.scroll_into_view_if_needed()
        polls = 40  # bqplot relays out 300 ms after a resize, in the next frame
        while not plot_fits(figure) and polls:
            lab.page.wait_for_timeout(100)
            polls -= 1
        assert plot_fits(figure), (width, view, figure.evaluate(_FIGURE_FIT_JS))
        widths[view] = figure.evaluate(_FIGURE_FIT_JS)["figure"][2]
    over = dashboard(lab).evaluate(_OVERFLOW_JS)
    assert not over, f"at {width} px wide:\n" + "\n".join(over)
    lab.screenshot(f"round9-{width}px")
    return widths


def status_changes(lab: LabPage, action: Any) -> None:
    before = lab.view("sw-status").inner_text()
    action()
    expect(lab.view("sw-status")).not_to_have_text(before)


def test_dashboard_interactions_in_notebook_7(lab: LabPage, notebook: str) -> None:
    lab.open_notebook(notebook, ui="notebook")
    lab.run_all_cells(timeout_s=300)
    assert_sound(lab)
    state = assert_page_agrees_with_kernel(lab)
    assert state["n"] == 0 and state["unit"] is not None

    # A rectangle, then a lasso, on the PCA plot.
    pca = lab.view_figure("sw-pca")
    select_tool(lab, "rectangle")
    status_changes(lab, lambda: lab.brush(pca, (0.1, 0.1), (0.55, 0.9)))
    n_rect = assert_page_agrees_with_kernel(lab)["n"]
    select_tool(lab, "lasso")
    status_changes(lab, lambda: lab.drag(pca, SQUARE))
    n_lasso = assert_page_agrees_with_kernel(lab)["n"]
    assert 0 < n_rect < 1797 and 0 < n_lasso < 1797

    # The probe slider dragged most of the way right.
    probe = lab.view("sw-probe")
    handle = probe.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    track, knob = probe.locator(".noUi-target").first.bounding_box(), handle.bounding_box()
    assert track is not None and knob is not None
    y = knob["y"] + knob["height"] / 2
    lab.page.mouse.move(knob["x"] + knob["width"] / 2, y)
    lab.page.mouse.down()
    lab.page.mouse.move(track["x"] + 0.85 * track["width"], y, steps=10)
    lab.page.mouse.up()
    expect(probe.locator(".widget-readout").first).not_to_have_text("0")
    assert assert_page_agrees_with_kernel(lab)["probe_value"] > 0

    # A heatmap column, then a row of the unit list, focus their units.
    unit = click_heatmap_column(lab, lab.view_figure("sw-heatmap"), state["unit"])
    expect(lab.view("sw-status")).to_have_text(re.compile(rf" · unit {unit}$"))
    assert assert_page_agrees_with_kernel(lab)["unit"] == unit
    rows = lab.view("sw-unit-table").locator(".sw-unit-rows option")
    row = next(i for i in range(rows.count()) if rows.nth(i).inner_text().split()[0] != str(unit))
    picked = int(rows.nth(row).inner_text().split()[0])
    rows.nth(row).click()
    expect(lab.view("sw-status")).to_have_text(re.compile(rf" · unit {picked}$"))
    assert assert_page_agrees_with_kernel(lab)["unit"] == picked

    # The ToggleButtons: colour by activation, add to the selection, sort by max activation.
    for view, name in [
        ("sw-pca", "unit activation"),
        ("sw-pca", "add"),
        ("sw-unit-table", "max activation"),
    ]:
        button = lab.view(view).get_by_role("button", name=name, exact=True)
        button.click()
        expect(button).to_have_class(re.compile(r"\bmod-active\b"))
    state = assert_page_agrees_with_kernel(lab)
    assert (state["color_by"], state["mode"], state["sort_by"]) == (
        "activation",
        "add",
        "max activation",
    )
    assert_sound(lab)

    # A narrow and a wide window: nothing overflows, the figures follow the width.
    narrow = assert_fits(lab, 500)
    assert_sound(lab)
    wide = assert_fits(lab, 1900)
    assert wide["sw-heatmap"] < narrow["sw-heatmap"]  # wide: beside the PCA plot, not under
    assert_sound(lab)
    lab.page.set_viewport_size({"width": 1400, "height": 1000})

    # The output collapsed and expanded: every view is back, laid out.
    output_cell = cell(lab, 1)
    output_cell.scroll_into_view_if_needed()
    output_cell.locator(".jp-Cell-outputCollapser").click()
    expect(dashboard(lab)).to_be_hidden()
    output_cell.locator(".jp-OutputPlaceholder").click()
    expect(dashboard(lab)).to_be_visible()
    assert_sound(lab)
    assert_page_agrees_with_kernel(lab)

    # The dashboard cell run again: one new dashboard (its controls new), on the same
    # selection, focused unit and probe value.
    old = dashboard(lab).element_handle()
    run_cell(lab, 1)
    lab.page.wait_for_function("el => !el.isConnected", arg=old)
    assert_sound(lab)
    again = assert_page_agrees_with_kernel(lab)
    kept = ("n", "unit", "probe_value")
    assert [again[key] for key in kept] == [state[key] for key in kept]

    # The kernel restarted and every cell run again: a fresh dashboard, nothing selected.
    lab.page.locator("#jp-MainMenu").get_by_role("menuitem", name="Kernel", exact=True).click()
    lab.page.get_by_role("menuitem", name="Restart Kernel and Run All Cells…").click()
    old = dashboard(lab).element_handle()
    lab.page.get_by_role("button", name="Confirm Kernel Restart").click()
    lab.page.wait_for_function("el => !el.isConnected", arg=old, timeout=120_000)
    expect(lab.view("sw-status")).to_have_text(STATUS, timeout=120_000)
    lab.page.wait_for_function(
        "el => /\\[\\d+\\]/.test(el.textContent)",
        arg=cell(lab, STATE_CELL).locator(".jp-InputPrompt").element_handle(),
        timeout=120_000,
    )
    assert_sound(lab, restarted=True)
    state = assert_page_agrees_with_kernel(lab)
    assert state["n"] == 0 and state["color_by"] == "label"
    lab.screenshot("round9-after-restart")


def low_contrast(lab: LabPage) -> list[str]:
    found = dashboard(lab).evaluate(_CONTRASTS_JS)
    assert len(found) > 100  # the labels, buttons, list rows and axes were all read
    return [
        f"{item['text']!r}: {item['ratio']:.2f} (colour {item['color']}, fill {item['fill']},"
        f" on rgb{tuple(item['background'])})"
        for item in found
        if item["ratio"] < (3.0 if item["svg"] else 4.5)
    ]


def test_dashboard_text_readable_on_light_and_dark_themes_in_jupyterlab(
    lab: LabPage, notebook: str
) -> None:
    lab.open_notebook(notebook)
    lab.run_all_cells(timeout_s=300)
    assert_sound(lab)
    low = low_contrast(lab)
    assert not low, "text hard to read on the light theme:\n" + "\n".join(low)

    use_theme(lab.page, "Dark")
    lab.page.wait_for_timeout(500)  # every view's CSS of the theme applied
    low = low_contrast(lab)
    lab.screenshot("round9-dark")
    # Back to the light theme (a user setting: it would outlive this test in the session).
    use_theme(lab.page, "Light")
    assert not low, "text hard to read on the dark theme:\n" + "\n".join(low)
    assert_sound(lab)
