"""The dashboard's views in a real browser, on a small digits SAE (fixtures/views.ipynb):
rectangle and lasso drawn with the mouse in JupyterLab 4 and Notebook 7, hover cards on the
points under the lasso tool, the colours the page draws against the kernel's after each of 10
unit changes, a dead unit's message, the layout at 1,280 px, CSV and PNG export, the busy note,
and the dark theme."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from playwright.sync_api import Error, Locator, Page, expect

import sae_widgets as sw

from .lab_page import LabPage, thrown_at

pytestmark = pytest.mark.browser

N_DIGITS = 1797
STATUS = re.compile(r"^([\d,]+) samples? selected · unit (\d+|none)$")

# Colours of the visible PCA points (the lasso's invisible copy has opacity 0), as "#rrggbb".
_DRAWN_COLORS_JS = """
figure => [...figure.querySelectorAll('.dot')]
  .map(dot => getComputedStyle(dot))
  .filter(style => style.opacity !== '0')
  .map(style => '#' + style.fill.match(/\\d+/g).slice(0, 3)
    .map(v => Number(v).toString(16).padStart(2, '0')).join(''))
"""
_COLORS_MATCH_JS = f"""
([figure, unit]) => {{
  const sent = JSON.parse(document.querySelector('.kernel-colors textarea').value || 'null');
  if (!sent || String(sent.unit) !== unit) return false;
  const drawn = ({_DRAWN_COLORS_JS})(figure);
  return drawn.length === sent.colors.length && drawn.every((c, i) => c === sent.colors[i]);
}}
"""


# The centres of two visible points that are drawn on top of everything else there (the
# point a user's pointer lands on), as [sample index, x, y]: the i-th visible dot is sample i.
_TOPMOST_POINTS_JS = """
figure => {
  const dots = [...figure.querySelectorAll('.dot')]
    .filter(dot => getComputedStyle(dot).opacity !== '0');
  const found = [];
  for (let i = 0; i < dots.length && found.length < 2; i += 97) {
    const box = dots[i].getBoundingClientRect();
    const [x, y] = [box.left + box.width / 2, box.top + box.height / 2];
    const top = document.elementsFromPoint(x, y)
      .find(node => node.classList.contains('dot') && getComputedStyle(node).opacity !== '0');
    if (top === dots[i]) found.push([i, x, y]);
  }
  return found;
}
"""


def hover_cards_show_the_point(lab: LabPage, pca: Locator) -> None:
    """Hovering a point under the active lasso tool shows its card: its sample number, its
    label (the kernel's dataset) and its picture; moving on shows the next point's card."""
    labels = sw.datasets.digits().labels
    assert labels is not None
    pca.scroll_into_view_if_needed()
    points = pca.evaluate(_TOPMOST_POINTS_JS)
    assert len(points) == 2, "no point is drawn on top at its own centre"
    tooltip = lab.page.locator(".bqplot_mark_tooltip").filter(
        has=lab.page.locator(".sw-hover-card")
    )
    for sample, x, y in points:
        lab.page.mouse.move(x - 25, y - 25)
        lab.page.mouse.move(x, y, steps=5)
        card = tooltip.filter(visible=True)
        expect(card).to_have_count(1)
        expect(card).to_contain_text(f"sample {sample}label {labels[sample]}")
        expect(card.locator("img")).to_have_count(1)
    area = pca.locator("rect.plotarea_events").bounding_box()
    assert area is not None
    lab.page.mouse.move(area["x"] + area["width"] + 200, area["y"] - 50)  # off the plot
    expect(tooltip.filter(visible=True)).to_have_count(0)


def status_of(lab: LabPage) -> tuple[int, str]:
    match = STATUS.fullmatch(lab.view("sw-status").inner_text().strip())
    assert match is not None
    return int(match[1].replace(",", "")), match[2]


def select_tool(lab: LabPage, name: str) -> None:
    lab.view("sw-pca").get_by_role("button", name=name, exact=True).click()


def drag_changes_selection(lab: LabPage, pca: Locator, path: list[tuple[float, float]]) -> int:
    before = lab.view("sw-status").inner_text()
    lab.drag(pca, path)
    expect(lab.view("sw-status")).not_to_have_text(before)
    n, _ = status_of(lab)
    assert 0 < n < N_DIGITS
    return n


SQUARE = [(0.15, 0.15), (0.6, 0.15), (0.6, 0.85), (0.15, 0.85), (0.15, 0.15)]


def exports_download(lab: LabPage, n_selected: int) -> None:
    """ "CSV" offers the selection as a file of one row per selected sample (its digit label
    beside it); "PNG" downloads the plot as a PNG picture."""
    pca = lab.view("sw-pca")
    pca.get_by_role("button", name="CSV").click()
    link = pca.locator("a[download='selection.csv']")
    expect(link).to_have_text("selection.csv")
    with lab.page.expect_download() as csv_download:
        link.click()
    rows = Path(csv_download.value.path()).read_text().splitlines()
    assert rows[0] == "sample,label,label_name" and len(rows) == 1 + n_selected
    labels = sw.datasets.digits().labels
    assert labels is not None
    for row in rows[1:]:
        sample, label, _ = row.split(",")
        assert int(label) == labels[int(sample)]
    with lab.page.expect_download() as png_download:
        pca.get_by_role("button", name="PNG").click()
    assert Path(png_download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def busy_note_comes_and_goes(lab: LabPage) -> None:
    """While a view recomputes for longer than 200 ms, its "working..." note shows in the
    browser (sent from a timer thread while the kernel is busy), and it goes when done."""
    note = lab.view("sw-heatmap").locator(".sw-busy")
    expect(note).to_have_text("")
    lab.page.locator(".slow-redraw button, button.slow-redraw").first.click()
    expect(note).to_have_text("working...", timeout=1_400)  # before the 1.5 s are over
    expect(note).to_have_text("", timeout=10_000)


# Near-white pixels (every channel above 235) of a picture, as a fraction of it.
def white_fraction(png: bytes) -> float:
    rgb = np.asarray(PIL.Image.open(io.BytesIO(png)).convert("RGB"))
    return float((rgb > 235).all(axis=-1).mean())


def use_theme(page: Page, name: str) -> None:
    """Switch JupyterLab to its "Dark" or "Light" theme through the command palette, as a
    user does."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Control+Shift+C")  # the command palette
    expect(page.locator(".lm-CommandPalette-input")).to_be_focused()
    command = f"Use Theme: JupyterLab {name}"
    page.keyboard.type(command)
    page.locator(".lm-CommandPalette-item", has_text=command).first.click()
    light = "true" if name == "Light" else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")


def dark_theme_has_no_white_blocks(lab: LabPage) -> None:
    """On JupyterLab's dark theme the PCA and heatmap row shows no white blocks (a silent
    heatmap cell and a picture not drawn yet are transparent: measured 13% of that row was
    near-white before) and the axes stay readable (light tick labels)."""
    page = lab.page
    use_theme(page, "Dark")
    row = lab.view("sw-dashboard").locator(":scope > div").nth(1)  # PCA beside the heatmap
    row.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # the theme's CSS applied
    assert white_fraction(row.screenshot()) < 0.02
    tick = lab.view_figure("sw-pca").locator(".tick text").first
    fill = tick.evaluate("t => getComputedStyle(t).fill")
    channels = [int(v) for v in re.findall(r"\d+", fill)[:3]]
    assert min(channels) > 128, f"tick labels drawn in {fill} on the dark theme"
    lab.screenshot("views-dark")


def test_views_in_jupyterlab_select_colour_and_fit_1280px(lab: LabPage) -> None:
    lab.page.set_viewport_size({"width": 1280, "height": 1000})
    lab.open_notebook("views.ipynb")
    lab.run_all_cells(timeout_s=300)
    lab.assert_no_errors()
    pca = lab.view_figure("sw-pca")
    expect(pca).to_have_count(1)
    heatmap = lab.view_figure("sw-heatmap")

    # Layout at 1,280 px: the PCA plot and the heatmap share one row, side by side.
    pca_box, heat_box = pca.bounding_box(), heatmap.bounding_box()
    assert pca_box is not None and heat_box is not None
    assert heat_box["x"] >= pca_box["x"] + pca_box["width"]
    assert abs(heat_box["y"] - pca_box["y"]) < 0.5 * pca_box["height"]
    assert heat_box["width"] >= 340

    # Hover cards, with the lasso tool active (its layer lies over the points).
    hover_cards_show_the_point(lab, pca)

    # Rectangle, then lasso, drawn with the mouse; "add" grows the selection; undo.
    select_tool(lab, "rectangle")
    n_rect = drag_changes_selection(lab, pca, [(0.1, 0.1), (0.55, 0.9)])
    select_tool(lab, "lasso")
    n_lasso = drag_changes_selection(lab, pca, SQUARE)
    lab.view("sw-pca").get_by_role("button", name="add", exact=True).click()
    n_added = drag_changes_selection(lab, pca, [(0.6, 0.1), (0.95, 0.1), (0.95, 0.9), (0.6, 0.9)])
    assert n_added > n_lasso
    lab.view("sw-pca").get_by_role("button", name="undo").click()
    expect(lab.view("sw-status")).to_have_text(re.compile(rf"^{n_lasso:,} samples selected"))
    assert n_rect > 0
    exports_download(lab, n_lasso)
    busy_note_comes_and_goes(lab)

    # Colour by unit: after each of 10 unit changes (the unit table's "next"), the colours the
    # page draws for the 1,797 points equal the ones the kernel sent.
    lab.view("sw-pca").get_by_role("button", name="unit activation", exact=True).click()
    handle = pca.element_handle()
    for _ in range(10):
        _, before = status_of(lab)
        lab.view("sw-unit-table").get_by_role("button", name="next").click()
        expect(lab.view("sw-status")).not_to_have_text(re.compile(rf"unit {before}$"))
        _, unit = status_of(lab)
        lab.page.wait_for_function(_COLORS_MATCH_JS, arg=[handle, unit], timeout=15_000)
        drawn = pca.evaluate(_DRAWN_COLORS_JS)
        assert len(drawn) == N_DIGITS

    # A dead unit says so instead of drawing an empty gallery.
    printed = lab.page.locator("pre", has_text="dead units:").inner_text()
    dead = re.search(r"first (\d+)", printed)
    assert dead is not None, "the fixture SAE has no dead unit"
    picker = lab.view("sw-inspector").locator("input").first
    picker.fill(dead[1])
    picker.press("Enter")
    note = lab.page.locator(".sw-dead-unit")
    expect(note).to_contain_text(f"unit {dead[1]} is dead")
    expect(
        lab.view("sw-inspector").locator(".bqplot.figure").filter(has_text="top-activating")
    ).to_be_hidden()
    lab.screenshot("views-1280")
    dark_theme_has_no_white_blocks(lab)
    lab.assert_no_errors()


def notebook76_shortcuts_race(error: Error) -> bool:
    """The one page error Notebook 7.6 throws on every start-up of a notebook page, in any
    set-up: `jupyter notebook` as well as `jupyter lab`, with no labextension and no user
    setting (Notebook 7.5.8 with JupyterLab 4.5 throws none). Its bundled shortcuts plugin
    listens for settings loads before its own settings are loaded, and reads their schema when
    @jupyterlab/docmanager-extension:plugin's load comes first. Picked by its message and by
    being thrown in Notebook 7's own bundle (not a widget's labextension), so the same message
    from anything else still fails."""
    return error.message == "Cannot read properties of undefined (reading 'schema')" and (
        "/static/notebook/notebook_core." in thrown_at(error)
    )


def assert_no_errors_but_notebook76s(lab: LabPage) -> None:
    errors = lab.errors(ignored_page_error=notebook76_shortcuts_race)
    assert not errors, "errors in the notebook page:\n\n" + "\n\n".join(errors)


def test_rectangle_and_lasso_reach_the_kernel_in_notebook_7(lab: LabPage) -> None:
    lab.open_notebook("views.ipynb", ui="notebook")
    lab.run_all_cells(timeout_s=300)
    assert_no_errors_but_notebook76s(lab)
    pca = lab.view_figure("sw-pca")
    expect(pca).to_have_count(1)
    select_tool(lab, "rectangle")
    drag_changes_selection(lab, pca, [(0.1, 0.1), (0.55, 0.9)])
    select_tool(lab, "lasso")
    drag_changes_selection(lab, pca, SQUARE)
    lab.screenshot("views-notebook7")
    assert_no_errors_but_notebook76s(lab)
