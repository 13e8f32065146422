"""Data of one input feature (d = 1) in a real JupyterLab: the UnitInspector draws its three
figures and the page stays responsive (its decoder / encoder bars, two Bars marks on a
one-category axis, froze the tab before they got a blank second category)."""

from __future__ import annotations

from collections.abc import Iterator

import nbformat
import pytest

from .lab_page import LabPage
from .lab_server import LabServer

pytestmark = pytest.mark.browser

NOTEBOOK = "one_feature.ipynb"
CELL = """\
import numpy as np
import torch

import sae_widgets as sw

torch.set_num_threads(2)  # a tiny SAE; the test machine's cores are shared
X = np.random.default_rng(0).normal(size=(200, 1)).astype(np.float32)
sae = sw.SAE(n_units=4, k=1, epochs=2, batch_size=32, seed=0).fit(X, progress=False)
sw.UnitInspector(sw.Explorer(sae, sw.Dataset(X)))"""


@pytest.fixture
def notebook(lab_server: LabServer) -> Iterator[str]:
    path = lab_server.root_dir / NOTEBOOK
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, path)
    yield NOTEBOOK
    path.unlink(missing_ok=True)


def test_the_inspector_of_one_input_feature_draws_and_the_page_responds(
    lab: LabPage, notebook: str
) -> None:
    lab.open_notebook(notebook)
    lab.run_all_cells(timeout_s=120)
    lab.assert_figures_rendered(3)
    assert lab.page.evaluate("1 + 1") == 2  # a frozen tab answers nothing
    lab.assert_no_errors()
