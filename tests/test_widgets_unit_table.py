"""UnitTable headless: rows, sorting, search, previous/next, and focus both ways."""

from __future__ import annotations

import numpy as np
import pytest

import sae_widgets as sw
from sae_widgets.analysis.unit_stats import unit_stats


@pytest.fixture(scope="module")
def fitted():
    ds = sw.datasets.digits()
    sae = sw.SAE(n_units=24, k=4, epochs=2, batch_size=256, seed=0).fit(ds.X, progress=False)
    return ds, sae, np.asarray(sae.transform(ds.X))


def test_unit_stats_match_brute_force(fitted):
    ds, sae, codes = fitted
    ex = sw.Explorer(sae, ds)
    stats = unit_stats(ex.codes, ds.labels)
    fires = codes != 0
    np.testing.assert_allclose(stats.frequency, fires.mean(axis=0))
    np.testing.assert_allclose(stats.max_activation, codes.max(axis=0), rtol=1e-6)
    for unit in range(codes.shape[1]):
        if fires[:, unit].any():
            summary = ex.unit_summary(unit)
            assert stats.top_label[unit] == summary.top_label
            assert stats.selectivity[unit] == pytest.approx(summary.label_selectivity)
        else:
            assert stats.top_label[unit] == -1 and np.isnan(stats.selectivity[unit])
    with pytest.raises(ValueError, match="labels"):
        unit_stats(ex.codes, ds.labels[:5])


def test_table_sorts_searches_steps_and_focuses(fitted):
    ds, sae, codes = fitted
    ex = sw.Explorer(sae, ds)
    table = sw.UnitTable(ex)
    frequency = (codes != 0).mean(axis=0)
    assert table.order.tolist() == np.argsort(-frequency, kind="stable").tolist()
    assert [value for _, value in table.table.options] == table.order.tolist()
    table.sort_by.value = "max activation"
    assert table.order.tolist() == np.argsort(-codes.max(axis=0), kind="stable").tolist()
    # Picking a row focuses its unit; focusing elsewhere highlights the row.
    table.table.value = int(table.order[3])
    assert ex.selection.unit == table.order[3]
    table.step(1)
    assert ex.selection.unit == table.order[4] and table.table.value == table.order[4]
    table.previous_button.click()
    assert ex.selection.unit == table.order[3]
    ex.selection.unit = int(table.order[0])
    table.step(-1)  # at the top it stays
    assert ex.selection.unit == table.order[0]
    # Search by unit number, then by label name.
    table.search.value = "1"
    assert all(str(u).startswith("1") for u in table.order) and len(table.order) > 1
    table.search.value = "7"
    stats = unit_stats(ex.codes, ds.labels)
    expected = {u for u in range(24) if str(u).startswith("7")}
    assert set(table.order.tolist()) == expected
    table.search.value = ""
    # Enrichment follows the selection.
    sevens = np.flatnonzero(ds.labels == 7).tolist()
    ex.selection.samples = sevens
    table.sort_by.value = "enrichment"
    assert table.order[0] == ex.enrichment(sevens, top=1).units[0]
    assert "1,797" not in table.caption.value and f"{len(sevens)} selected" in table.caption.value
    assert stats.top_label[table.order[0]] == 7
    with pytest.raises(ValueError, match="sort_by"):
        sw.UnitTable(ex, sort_by="name")


def test_rows_select_behaves_as_ipywidgets_select():
    """The table's Select skips ipywidgets' per-row checks; labels, values, the index and
    the other option forms must still come out as ipywidgets' own Select gives them."""
    import ipywidgets as widgets

    from sae_widgets.widgets.unit_table import _Rows

    forms = [[("a", 3), ("b", 1), ("c", 2)], [("x", 1)], [], ["p", "q"], {"m": 5, "n": 6}]
    ours, theirs = _Rows(options=[("z", 9)]), widgets.Select(options=[("z", 9)])
    for options in forms:
        for select in (ours, theirs):
            select.options = options
        for name in ("_options_labels", "_options_values", "index", "value", "label"):
            assert tuple(np.atleast_1d(getattr(ours, name))) == tuple(
                np.atleast_1d(getattr(theirs, name))
            ), (options, name)
    ours.options = theirs.options = [("a", 3), ("b", 1)]
    ours.value = theirs.value = 1
    ours.options = theirs.options = [("b", 1), ("a", 3), ("c", 7)]
    assert (ours.index, ours.value) == (theirs.index, theirs.value)
