"""Our anywidgets in a real JupyterLab when anywidget's 2 s for loading a model run out.

anywidget (0.11) gives each model 2 s from its creation in the browser to import its ESM;
past that it rejects "[anywidget] Failed to initialize model." (an uncaught page error) and
drops every later message from the kernel to that model. Drawing a dashboard held the page's
main thread long enough for that in about 2 runs of 5 of test_browser_round8.py; here a model's
ESM is made to take 2.5 s to load on purpose, and models closed at once (before their ESM
loaded) had the same rejection 2 s later. Before the fix both tests failed in every run.
See sae_widgets/widgets/_steady_anywidget.py for why our widgets now come through both.
"""

from __future__ import annotations

from collections.abc import Iterator

import nbformat
import pytest
from playwright.sync_api import expect

from .lab_page import ACTIVE_NOTEBOOK, LabPage
from .lab_server import LabServer

pytestmark = pytest.mark.browser

NOTEBOOK = "widget_lifecycle.ipynb"
SLOW_MS = 2500  # past anywidget's 2 s

# Makes the next ESM that anywidget loads take SLOW_MS to load, as it does when other views
# hold the page's main thread that long: anywidget's import of the model's blob gets a module
# that imports the real one and then waits (without blocking the page), so the model's 2 s
# surely run out first. Counts the slowed loads, so the test knows the race was really lost.
SLOW_JS = """
window.__swSlowMs = 0;
window.__swSlowed = 0;
const createObjectURL = URL.createObjectURL;
URL.createObjectURL = function (blob) {
  const url = createObjectURL.call(URL, blob);
  if (!(window.__swSlowMs > 0 && blob && blob.type === 'text/javascript')) return url;
  const slow = `export * from '${url}';\nexport { default } from '${url}';\n`
    + `await new Promise(resolve => setTimeout(resolve, ${window.__swSlowMs}));\n`;
  window.__swSlowMs = 0;
  window.__swSlowed += 1;
  return createObjectURL.call(URL, new Blob([slow], { type: 'text/javascript' }));
};
"""

SETUP = """\
import ipywidgets as widgets
from sae_widgets.widgets._unit_buttons import UnitButtons

clicks = widgets.HTML("no click")


def clicked(unit):
    clicks.value = f"clicked unit {unit}"


def shown(name, *children):
    box = widgets.VBox(list(children))
    box.add_class(f"lifecycle-{name}")
    return box"""


def write_notebook(server: LabServer, cells: list[str]) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in [SETUP, *cells]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, server.root_dir / NOTEBOOK)
    return NOTEBOOK


@pytest.fixture
def slowing_lab(lab: LabPage) -> Iterator[LabPage]:
    lab.page.add_init_script(SLOW_JS)
    yield lab
    (lab.server.root_dir / NOTEBOOK).unlink(missing_ok=True)


def anywidget_errors(lab: LabPage) -> list[str]:
    """Page errors and error-like lines in the notebook, and browser console lines that
    mention anywidget's failure."""
    return lab.errors() + [line for line in lab.console if "Failed to initialize" in line]


def test_a_model_loaded_late_still_follows_the_kernel(slowing_lab: LabPage) -> None:
    lab = slowing_lab
    notebook = write_notebook(
        lab.server,
        [
            """\
buttons = UnitButtons("<b>units</b>", clicked)
buttons.show([1, 2])
shown("late", buttons, clicks)""",
            "buttons.show([7, 8, 9], strong=8)",
        ],
    )
    lab.open_notebook(notebook)
    lab.page.evaluate(f"window.__swSlowMs = {SLOW_MS}")
    lab.run_all_cells(timeout_s=120)
    assert lab.page.evaluate("window.__swSlowed") == 1  # the model's ESM was the slow one

    root = lab.page.locator(f"{ACTIVE_NOTEBOOK} .lifecycle-late")
    buttons = root.locator("button.sw-unit-button")
    # The update sent after the model's 2 s ran out reached the page...
    expect(buttons).to_have_text(["unit 7", "unit 8", "unit 9"])
    expect(buttons.nth(1)).to_have_css("font-weight", "700")
    # ...and a click reaches the kernel.
    buttons.nth(1).click()
    expect(root.locator(".widget-html", has_text="clicked unit")).to_have_text("clicked unit 8")
    errors = anywidget_errors(lab)
    assert not errors, "\n\n".join(errors)


def test_models_closed_before_they_loaded_leave_no_error(lab: LabPage) -> None:
    notebook = write_notebook(
        lab.server,
        [
            """\
for _ in range(3):
    UnitButtons("<b>gone</b>", clicked).close()
kept = UnitButtons("<b>kept</b>", clicked)
kept.show([4, 5])
shown("kept", kept)""",
        ],
    )
    try:
        lab.open_notebook(notebook)
        lab.run_all_cells(timeout_s=120)
        buttons = lab.page.locator(f"{ACTIVE_NOTEBOOK} .lifecycle-kept button.sw-unit-button")
        expect(buttons).to_have_text(["unit 4", "unit 5"])
        # anywidget's 2 s for the closed models: any rejection of theirs has come by then
        lab.page.wait_for_timeout(2500)
        errors = anywidget_errors(lab)
        assert not errors, "\n\n".join(errors)
    finally:
        (lab.server.root_dir / NOTEBOOK).unlink(missing_ok=True)
