"""Selection tools without a GUI: add / subtract / replace, undo / redo, and export."""

from __future__ import annotations

import numpy as np
import pytest

import sae_widgets as sw
from sae_widgets.explore.history import SelectionHistory, combine
from sae_widgets.explore.selection import Selection


def test_combine_replaces_adds_and_subtracts():
    assert combine([1, 2, 3], [5, 3], "replace").tolist() == [3, 5]
    assert combine([1, 2, 3], [5, 3], "add").tolist() == [1, 2, 3, 5]
    assert combine([1, 2, 3], [5, 3], "subtract").tolist() == [1, 2]
    assert combine([], np.array([4, 4]), "add").tolist() == [4]
    assert combine([3, 1, 2, 9], [0, 9, 9, 4], "subtract").tolist() == [1, 2, 3]
    assert combine([1, 2], [], "subtract").tolist() == [1, 2]
    assert combine([7], [7], "subtract").tolist() == []
    with pytest.raises(ValueError, match="mode"):
        combine([1], [2], "xor")


def test_history_undoes_and_redoes_every_change_in_order():
    selection = Selection(n_units=4, n_samples=10)
    history = SelectionHistory(selection, limit=3)
    assert not history.can_undo and history.undo() is False
    for chosen in ([1], [1, 2], [5], [6, 7]):
        selection.samples = chosen
    assert history.undo() and selection.samples == [5]
    assert history.undo() and selection.samples == [1, 2]
    assert history.undo() and selection.samples == [1]
    assert history.undo() is False and selection.samples == [1]  # limit 3: [] was forgotten
    assert history.redo() and selection.samples == [1, 2]
    selection.samples = [9]  # a new change forgets what could be redone
    assert history.redo() is False and selection.samples == [9]
    history.close()
    selection.samples = [3]
    assert history.undo() and selection.samples == [1, 2]
    with pytest.raises(TypeError, match="selection"):
        SelectionHistory([1, 2])
    with pytest.raises(ValueError, match="limit"):
        SelectionHistory(selection, limit=0)


@pytest.fixture(scope="module")
def ex():
    ds = sw.datasets.digits()[:300]
    sae = sw.SAE(n_units=16, k=3, epochs=1, batch_size=128, seed=0).fit(ds.X, progress=False)
    return sw.Explorer(sae, ds)


def test_explorer_history_and_exports_follow_the_selection(ex):
    ex.selection.samples = [4, 8, 15]
    ex.selection.samples = [16, 23]
    assert ex.history.undo() and ex.selection.samples == [4, 8, 15]
    subset = ex.selection_to_dataset()
    assert len(subset) == 3
    np.testing.assert_array_equal(subset.X, ex.dataset.X[[4, 8, 15]])
    np.testing.assert_array_equal(subset.labels, ex.dataset.labels[[4, 8, 15]])
    ex.selection.unit = 2
    frame = ex.selection_to_dataframe()
    assert list(frame["sample"]) == [4, 8, 15]
    assert list(frame["label"]) == [str(ex.dataset.labels[i]) for i in (4, 8, 15)] or list(
        frame["label"]
    ) == [int(ex.dataset.labels[i]) for i in (4, 8, 15)]
    dense = ex.codes.dense([4, 8, 15])
    np.testing.assert_allclose(frame["unit_2"], dense[:, 2], rtol=1e-6)
    np.testing.assert_array_equal(frame["active_units"], np.count_nonzero(dense, axis=1))
