"""The widgets in a real JupyterLab on data unlike the tutorials': a dashboard over 3 samples,
over one feature without labels, over 1,000 label classes whose names hold HTML, right-to-left
script and emoji, over 1 x 50 images, over an SAE of one unit (beside a lone heatmap), and a
TrainingMonitor fed a short fit. One notebook (written by this test) holds them all; for each:
no error in the page, every view laid out and visible with a drawn figure, no NaN or Infinity
in any SVG attribute or text, and a lasso drawn in its PCA plot reaches the other views (the
status line, and a unit the PCA view lists focuses that unit)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import nbformat
import pytest
from playwright.sync_api import Dialog, Locator, expect

from .lab_page import ACTIVE_NOTEBOOK, LabPage
from .lab_server import LabServer

pytestmark = pytest.mark.browser

NOTEBOOK = "round8_unusual_data.ipynb"
NEGATIVE_RECT = re.compile(r"<rect> attribute (width|height): A negative value is not valid")
STATUS = re.compile(r"^([\d,]+) samples? selected · unit (\d+|none)$")

CELLS = [
    """\
import ipywidgets as widgets
import numpy as np
import torch

import sae_widgets as sw

torch.manual_seed(0)
torch.set_num_threads(2)  # tiny SAEs; the test machine's cores are shared
rng = np.random.default_rng(0)


def tiny(X, **options):
    settings = {"n_units": 8, "k": 2, "epochs": 2, "batch_size": 32, "seed": 0, **options}
    return sw.SAE(**settings).fit(X, progress=False)


def case(name, widget):
    box = widgets.VBox([widget])
    box.add_class(f"case-{name}")
    return box""",
    """\
three = sw.datasets.digits()[np.array([0, 1, 2])]
ex_three = sw.Explorer(tiny(three), three)
case("three", ex_three.dashboard())""",
    """\
odd = ["<b>bold</b> & <i>", "שלום עולם", "مرحبا بالعالم", "🐱‍👤 cat 🇫🇷",
       "<script>alert(1)</script>", "a\\"b'c\\\\"]
names = [f"{odd[i % len(odd)]} #{i}" for i in range(1000)]
many = sw.Dataset(
    rng.normal(size=(3000, 12)).astype(np.float32), labels=np.arange(3000) % 1000, label_names=names
)
ex_many = sw.Explorer(tiny(many, n_units=16), many)
case("many-classes", ex_many.dashboard())""",
    """\
strip_X = rng.random((300, 50)).astype(np.float32)
strip = sw.Dataset(strip_X, labels=np.arange(300) % 3, images=strip_X.reshape(-1, 1, 50))
ex_strip = sw.Explorer(tiny(strip), strip)
case("strip", ex_strip.dashboard())""",
    """\
digits = sw.datasets.digits()[np.arange(400)]
ex_unit = sw.Explorer(tiny(digits, n_units=1, k=1), digits)
case("one-unit", widgets.VBox([sw.ActivationHeatmap(ex_unit), ex_unit.dashboard()]))""",
    """\
monitor = sw.TrainingMonitor(sw.SAE(n_units=8, k=2, epochs=1, batch_size=64, seed=0),
                             min_interval=0.1)
monitor.fit(digits.X)
monitor.join()
case("monitor", monitor)""",
]

# (case, its number of samples) for the dashboards.
# One input feature (d = 1) has its own test: tests/browser/test_one_feature.py.
DASHBOARDS = [("three", 3), ("many-classes", 3000), ("strip", 300)]
VIEWS = ("sw-status", "sw-pca", "sw-heatmap", "sw-inspector", "sw-unit-table")

# Every SVG attribute or text that says NaN or Infinity (a coordinate, size or tick computed
# from a degenerate range), as "tag.attribute=value".
_NON_FINITE_JS = """
root => {
  const bad = [];
  for (const svg of root.querySelectorAll('svg')) {
    for (const el of [svg, ...svg.querySelectorAll('*')]) {
      for (const attr of el.attributes) {
        if (/NaN|Infinity/.test(attr.value)) {
          bad.push(`${el.tagName}.${attr.name}=${attr.value.slice(0, 80)}`);
        }
      }
      if (el.tagName === 'text' && /NaN|Infinity/.test(el.textContent)) {
        bad.push(`text: ${el.textContent.slice(0, 80)}`);
      }
    }
  }
  return bad.slice(0, 20);
}
"""


def notebook_of_cells(lab_server: LabServer, name: str, cells: list[str]) -> Iterator[str]:
    """A fixture's body: the notebook `name` of these code cells in the server's root, removed
    after the test."""
    path = lab_server.root_dir / name
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, path)
    yield name
    path.unlink(missing_ok=True)


@pytest.fixture
def notebook(lab_server: LabServer) -> Iterator[str]:
    yield from notebook_of_cells(lab_server, NOTEBOOK, CELLS)


def case(lab: LabPage, name: str) -> Locator:
    return lab.page.locator(f"{ACTIVE_NOTEBOOK} .case-{name}")


def assert_laid_out_and_finite(lab: LabPage, root: Locator, views: tuple[str, ...]) -> None:
    """Each view (CSS class) is visible with a non-zero size, its main figure too, and no SVG
    under `root` holds NaN or Infinity."""
    root.scroll_into_view_if_needed()
    for view in views:
        element = root.locator(f".{view}").first
        expect(element).to_be_visible()
        box = element.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0, (view, box)
        figure = element.locator(".bqplot.figure.sw-figure")
        if view != "sw-status" and figure.count():
            figure.first.scroll_into_view_if_needed()
            expect(figure.first).to_be_visible()
            fbox = figure.first.bounding_box()
            assert fbox is not None and fbox["width"] > 50 and fbox["height"] > 50, (view, fbox)
    bad = root.evaluate(_NON_FINITE_JS)
    assert not bad, f"non-finite SVG values: {bad}"


def status_of(root: Locator) -> tuple[int, str]:
    text = root.locator(".sw-status").first.inner_text().strip()
    match = STATUS.fullmatch(text)
    assert match is not None, text
    return int(match[1].replace(",", "")), match[2]


def lasso_reaches_the_other_views(lab: LabPage, root: Locator, n_samples: int) -> None:
    """A lasso over most of the PCA plot selects samples (the status line says how many);
    a unit the PCA view then lists, when it is not the focused one, focuses every view."""
    pca = root.locator(".sw-pca .bqplot.figure.sw-figure")
    status = root.locator(".sw-status").first
    before = status.inner_text()
    square = [(0.02, 0.02), (0.98, 0.02), (0.98, 0.98), (0.02, 0.98), (0.02, 0.02)]
    lab.drag(pca, square)
    expect(status).not_to_have_text(before)
    n, focused = status_of(root)
    assert 0 < n <= n_samples
    listed = root.locator(".sw-pca button[title^='focus unit']:visible")
    titles = listed.evaluate_all("buttons => buttons.map(b => b.title)")
    units = [title.removeprefix("focus unit ") for title in titles]
    other = next((i for i, unit in enumerate(units) if unit != focused), None)
    if other is None:
        return
    listed.nth(other).click()
    expect(status).to_have_text(re.compile(rf" · unit {units[other]}$"))
    stats = root.locator(".sw-inspector .widget-html", has_text=re.compile(r"^unit \d+ · "))
    expect(stats.first).to_have_text(re.compile(rf"^unit {units[other]} · "))


def test_widgets_on_unusual_data_in_jupyterlab(lab: LabPage, notebook: str) -> None:
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    lab.page.on("dialog", on_dialog)
    lab.open_notebook(notebook)
    lab.run_all_cells(timeout_s=300)
    errors = lab.errors()
    assert not errors, "errors in the notebook page:\n\n" + "\n\n".join(errors)

    for name, n_samples in DASHBOARDS:
        root = case(lab, name)
        expect(root).to_have_count(1)
        assert_laid_out_and_finite(lab, root, VIEWS)
        lasso_reaches_the_other_views(lab, root, n_samples)
        assert_laid_out_and_finite(lab, root, VIEWS)
        lab.screenshot(f"round8-{name}", target=root)

    # One unit: the lone heatmap and the dashboard's both draw one column.
    root = case(lab, "one-unit")
    expect(root.locator(".sw-heatmap")).to_have_count(2)
    assert_laid_out_and_finite(lab, root, VIEWS)
    lasso_reaches_the_other_views(lab, root, 400)
    assert_laid_out_and_finite(lab, root, VIEWS)

    # The monitor of a finished short fit: every curve laid out and drawn.
    root = case(lab, "monitor")
    assert_laid_out_and_finite(lab, root, ("sw-monitor",))
    expect(root.locator(".sw-monitor .widget-html").first).to_contain_text("done")
    for index in range(root.locator(".bqplot.figure").count()):
        figure = root.locator(".bqplot.figure").nth(index)
        figure.scroll_into_view_if_needed()
        box = figure.bounding_box()
        assert box is not None and box["width"] > 50 and box["height"] > 50
        assert figure.locator("path.line").count() >= 1

    # The odd label names are shown as text: no markup of theirs became elements or ran.
    many = case(lab, "many-classes")
    assert many.locator("script").count() == 0
    assert not dialogs, dialogs
    assert many.get_by_text(re.compile("^bold$")).count() == 0
    errors = lab.errors()
    assert not errors, "errors in the notebook page:\n\n" + "\n\n".join(errors)
    # Hidden figures (0 x 0 px: a panel not shown yet) make bqplot set a negative <rect>
    # size, which Chromium logs as an error; every notebook does that, so it is left out.
    errors = [
        line
        for line in lab.console
        if line.startswith("[error]") and not NEGATIVE_RECT.search(line)
    ]
    assert not errors, "console errors:\n" + "\n".join(errors)
