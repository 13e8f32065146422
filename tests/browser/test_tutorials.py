"""Every tutorial notebook runs in a real JupyterLab without errors and draws every figure.

The quickstart and the language-model notebook have their own tests that also drive their
dashboards (test_quickstart.py, test_language_model.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from .lab_page import REPO_ROOT, LabPage

pytestmark = pytest.mark.browser

TUTORIALS = sorted(
    path.name
    for path in (REPO_ROOT / "notebooks").glob("*.ipynb")
    if path.name not in ("01_quickstart.ipynb", "05_language_model.ipynb")
)


# Notebooks whose dashboard shows a model's activations of pictures (and a probe sample).
INPUT_PICTURES = {"03_model_activations.ipynb"}


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_runs_and_draws_in_jupyterlab(lab: LabPage, name: str) -> None:
    lab.open_notebook(name)
    lab.run_all_cells(timeout_s=600)
    lab.assert_no_errors()
    figures = lab.assert_figures_rendered(min_count=1)
    lab.screenshot(Path(name).stem)
    assert all(info.width > 0 and info.height > 0 for info in figures)
    if name in INPUT_PICTURES:
        # Activations of a model over images: the sample card shows the input picture the
        # activations came from (not only the hidden vector as a line), decoded by the browser.
        picture = lab.view("sw-sample-card").locator(".sw-input-picture img")
        expect(picture).to_have_count(1)
        expect(picture).to_be_visible()
        assert picture.evaluate("img => img.complete && img.naturalWidth >= 32")
    lab.assert_no_errors()
