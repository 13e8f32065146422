"""`Explorer.refresh` after more training or a refit: every open view redraws from the new
codes (a selection always matches what is drawn), the Selection's unit range follows the SAE,
and a stale or mismatched SAE gets a clear ValueError, never a raw IndexError."""

from __future__ import annotations

from unittest.mock import Mock

import numpy as np
import pytest
import torch
from traitlets import All

import sae_widgets as sw

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


def fit(sae, X, partial=False):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny SAE; the test machine's cores are shared
    try:
        return sae.partial_fit(X) if partial else sae.fit(X, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def digits():
    return sw.datasets.digits()


@pytest.fixture
def sae(digits):
    """A fresh SAE per test: the tests train it further or refit it."""
    return fit(sw.SAE(n_units=16, k=4, epochs=1, batch_size=64, seed=0), digits.X)


def train_more(sae, X):
    for _ in range(5):
        fit(sae, X[:1024], partial=True)


def drawn(view):
    return np.column_stack([view.scatter.x, view.scatter.y]).astype(np.float64)


def test_refresh_notifies_the_revision_once(sae, digits):
    ex = sw.Explorer(sae, digits)
    ex.selection.unit = 2
    observer = Mock()
    ex.selection.observe(observer, names=All)
    ex.refresh()
    assert [c.args[0]["name"] for c in observer.call_args_list] == ["revision"]
    assert ex.selection.revision == 1 and ex.selection.unit == 2  # still a unit of the SAE
    with pytest.raises(AttributeError):
        ex.selection.revision = 5  # read-only: only refresh moves it


def test_a_refit_without_refresh_says_to_refresh(sae, digits):
    ex = sw.Explorer(sae, digits)
    ex.unit_summary(1)  # codes cached for 16 units
    fit(sae.set_params(n_units=8), digits.X)
    for query in (lambda: ex.reconstruct([0]), lambda: ex.probe(0, "rotation")):
        with pytest.raises(ValueError, match=r"call ex\.refresh\(\)"):
            query()
    ex = sw.Explorer(fit(sae.set_params(n_units=16), digits.X), digits)  # nothing cached
    fit(sae.set_params(n_units=8), digits.X)
    with pytest.raises(ValueError, match="sae now has 8 units but this Explorer was built"):
        ex.unit_direction(1)


def test_a_refit_on_inputs_of_another_width_asks_for_a_new_explorer(sae, digits):
    ex = sw.Explorer(sae, digits)
    ex.selection.unit = 4
    fit(sae, digits.X[:, :10])
    with pytest.raises(ValueError, match="build a new Explorer"):
        ex.refresh()
    assert ex.n_units == 16 and ex.selection.unit == 4 and ex.selection.revision == 0
