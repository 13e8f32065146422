"""CompareView headless: Selection -> view, clicks -> Selection, one notification per action."""

import copy
from unittest.mock import Mock

import numpy as np
import pytest
import torch
from traitlets import All

import sae_widgets as sw
from sae_widgets.widgets.compare import KIND_COLORS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


@pytest.fixture
def view(digits_sae, wider_digits_sae):
    sae_a, ds = digits_sae
    cmp = sw.compare(sw.Explorer(sae_a, ds), sw.Explorer(wider_digits_sae, ds), threshold=0.5)
    return sw.CompareView(cmp)


def watch(selection):
    observer = Mock()
    selection.observe(observer, names=All)
    return observer


def changed(observer):
    return [call.args[0]["name"] for call in observer.call_args_list]


def click_point(scatter, index):
    """The message bqplot's Scatter sends when a point is clicked in the browser."""
    scatter._handle_custom_msg({"event": "element_click", "data": {"index": index}}, [])


def test_scatter_draws_every_pair_coloured_by_kind_with_the_summary(view):
    pairs = view.cmp.pairs()
    drawn = 0
    for kind, scatter in view.scatters.items():
        chosen = pairs.kind == kind
        np.testing.assert_array_equal(view.units[kind], pairs.unit_a[chosen])
        np.testing.assert_allclose(scatter.x, pairs.cosine[chosen], atol=1e-6)
        np.testing.assert_allclose(scatter.y, pairs.log2_ratio[chosen], atol=1e-6)
        assert list(scatter.colors) == [KIND_COLORS[kind]]
        drawn += len(scatter.x)
    assert drawn == len(pairs) == 40
    assert view.cmp.summary() in view.summary.value
    counts = view.cmp.result.counts("a")
    for kind in KIND_COLORS:
        assert f"{kind} ({counts[kind]})" in view.summary.value
    assert not view.focus_mark.visible  # nothing focused yet
    assert view.panel_a.layout.display == "none" and view.panel_b.layout.display == "none"


def test_a_unit_set_from_python_shows_its_matches_and_top_samples(view):
    cmp = view.cmp
    observer_a, observer_b = watch(cmp.selection), watch(cmp.selection_b)
    cmp.selection.unit = 12
    assert changed(observer_a) == ["unit"] and changed(observer_b) == []
    row = int(np.flatnonzero(cmp.pairs().unit_a == 12)[0])
    np.testing.assert_allclose(view.focus_mark.x, [cmp.pairs().cosine[row]], atol=1e-6)
    np.testing.assert_allclose(view.focus_mark.y, [cmp.pairs().log2_ratio[row]], atol=1e-6)
    assert view.focus_mark.visible
    expected = cmp.matches(12, n=3)
    assert view.panel_a.shown == list(expected.units)
    assert view.panel_a.own.gallery.samples == list(cmp.top_samples(12, n=8)[0])
    for column, match in zip(view.panel_a.matches, expected.units):
        assert column.unit == match
        assert column.gallery.samples == list(cmp.top_samples(int(match), "b", 8)[0])
        assert f"B unit {match}</b> · cos" in column.caption.value
    assert "A unit 12</b>" in view.panel_a.title.value
    assert view.panel_a.layout.display is None and view.panel_b.layout.display == "none"
    cmp.selection.unit = None
    assert not view.focus_mark.visible and view.panel_a.layout.display == "none"


def test_clicking_a_point_focuses_its_unit_once(view):
    cmp = view.cmp
    kind = max(view.units, key=lambda k: len(view.units[k]))
    index = len(view.units[kind]) - 1
    observer_a, observer_b = watch(cmp.selection), watch(cmp.selection_b)
    click_point(view.scatters[kind], index)
    assert cmp.selection.unit == view.unit_at(kind, index)
    assert changed(observer_a) == ["unit"] and changed(observer_b) == []
    click_point(view.scatters[kind], index)  # the same point again: no change, no notification
    assert changed(observer_a) == ["unit"]


def test_a_match_button_focuses_the_unit_of_b_and_its_matches_in_a(view):
    cmp = view.cmp
    nearest = cmp.result.nearest
    mutual = [u for u in range(40) if nearest.b_to_a[nearest.a_to_b[u, 0], 0] == u]
    unit = mutual[0]  # a unit of A that is its best match's best match
    cmp.selection.unit = unit
    match = view.panel_a.matches[0].unit
    observer_a, observer_b = watch(cmp.selection), watch(cmp.selection_b)
    view.panel_a.matches[0].button.click()
    assert cmp.selection_b.unit == match
    assert changed(observer_b) == ["unit"] and changed(observer_a) == []
    assert "<i>focused</i>" in view.panel_a.matches[0].caption.value
    assert view.panel_b.layout.display is None
    assert view.panel_b.shown == list(cmp.matches(match, "b", 3).units)
    assert view.panel_b.shown[0] == unit
    # B's panel buttons focus units of A
    position = 0
    other = view.panel_b.matches[(position + 1) % len(view.panel_b.shown)].unit
    view.panel_b.matches[(position + 1) % len(view.panel_b.shown)].button.click()
    assert cmp.selection.unit == other


def test_a_closed_view_no_longer_follows(view):
    cmp = view.cmp
    view.close()
    cmp.selection.unit = 3
    assert not view.focus_mark.visible and view.panel_a.shown == []


def test_a_unit_that_never_fires_shows_no_gallery(digits_sae, wider_digits_sae):
    sae_a, ds = digits_sae
    silenced = copy.deepcopy(sae_a)
    with torch.no_grad():
        silenced.model_.b_enc[7] = -1e6  # unit 7 can no longer fire
    cmp = sw.compare(silenced, wider_digits_sae, ds)
    assert cmp.ex_a.codes.counts[7] == 0
    view = sw.CompareView(cmp)
    cmp.selection.unit = 7
    column = view.panel_a.own
    assert column.gallery.figure.layout.display == "none" and column.gallery.samples == []
    assert "never fires" in column.caption.value
    cmp.selection.unit = int(np.argmax(cmp.ex_a.codes.counts))
    assert column.gallery.figure.layout.display is None and len(column.gallery.samples) == 8


# ------------------------------------------------------------------ Explorer.refresh


def _fit(sae, X, partial=False):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return sae.partial_fit(X) if partial else sae.fit(X, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def fresh(digits_sae):
    """A compare view of two SAEs of its own (the tests train them further or refit them)."""
    _, ds = digits_sae
    sae_a = _fit(sw.SAE(n_units=16, k=4, epochs=1, batch_size=128, seed=0), ds.X)
    sae_b = _fit(sw.SAE(n_units=24, k=4, epochs=1, batch_size=128, seed=1), ds.X)
    ex_a, ex_b = sw.Explorer(sae_a, ds), sw.Explorer(sae_b, ds)
    view = sw.CompareView(sw.compare(ex_a, ex_b, threshold=0.5))
    yield view, ex_a, ex_b, ds
    view.close()


def drawn_pairs(view):
    return {
        kind: (list(view.units[kind]), np.asarray(scatter.x), np.asarray(scatter.y))
        for kind, scatter in view.scatters.items()
    }


def assert_draws_current_matching(view):
    pairs = view.cmp.pairs()
    for kind, (units, x, y) in drawn_pairs(view).items():
        chosen = pairs.kind == kind
        assert units == list(pairs.unit_a[chosen])
        np.testing.assert_allclose(x, pairs.cosine[chosen], atol=1e-6)
        np.testing.assert_allclose(y, pairs.log2_ratio[chosen], atol=1e-6)
    assert view.cmp.summary() in view.summary.value


def test_the_view_redraws_when_an_explorer_is_refreshed_after_more_training(fresh):
    view, ex_a, _ex_b, ds = fresh
    ex_a.selection.unit = 2
    before = view.cmp.result
    for _ in range(4):
        _fit(ex_a.sae, ds.X[:512], partial=True)
    ex_a.refresh()  # as every other view follows it; only Comparison.refresh redrew before
    assert view.cmp.result is not before  # the matching is of the trained SAE
    assert_draws_current_matching(view)
    row = int(np.flatnonzero(view.pairs.unit_a == 2)[0])
    np.testing.assert_allclose(view.focus_mark.x, [view.pairs.cosine[row]], atol=1e-6)
    assert view.panel_a.shown == list(view.cmp.matches(2, n=3).units)


def test_a_refit_with_other_unit_counts_redraws_the_view_once_per_refresh(fresh):
    view, ex_a, ex_b, ds = fresh
    ex_a.selection.unit = 15
    _fit(ex_a.sae.set_params(n_units=8), ds.X)
    _fit(ex_b.sae.set_params(n_units=12), ds.X)
    observers = [watch_mark(scatter) for scatter in view.scatters.values()]
    view.cmp.refresh()
    assert all(observer.call_count == 1 for observer in observers)  # not once per side
    assert "A (8) vs B (12)" in view.figure.title
    assert sum(len(units) for units, _x, _y in drawn_pairs(view).values()) == 8
    assert_draws_current_matching(view)
    assert ex_a.selection.unit is None and not view.focus_mark.visible  # 15 is gone


def watch_mark(scatter):
    observer = Mock()
    scatter.observe(observer, names="x")
    return observer
