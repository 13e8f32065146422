"""Counts in user-facing text agree in number with their noun: "1 unit", never "1 units".

One SAE with a single unit, on a small dataset, makes every count that can be one be one.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import sae_widgets as sw
from sae_widgets.explore.selection import Selection, SelectionError
from sae_widgets.widgets._export import csv_download_html
from sae_widgets.widgets._monitor_status import outcome
from sae_widgets.widgets.prefix_slider import PrefixSlider
from sae_widgets.widgets.unit_inspector import LABEL_TICK_ROOM
from sae_widgets.widgets.unit_table import LABEL_ROOM, UnitTable
from sae_widgets.wording import counted, noun_for, shortened, shortened_apart

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


def test_counted_says_one_noun_and_many_nouns():
    assert counted(1, "unit") == "1 unit"
    assert counted(0, "unit") == "0 units"
    assert counted(2048, "sample") == "2,048 samples"
    assert counted(1, "match", "matches") == "1 match" and counted(3, "match", "matches") == (
        "3 matches"
    )
    assert noun_for(1, "step") == "step" and noun_for(5, "step") == "steps"


@pytest.fixture(scope="module")
def one_unit():
    """A one-unit SAE on 30 labelled samples, and a sample it fires on and one it does not."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = rng.random((30, 6)).astype(np.float32)
    sae = sw.SAE(n_units=1, k=1, epochs=1, batch_size=8, seed=0).fit(X, progress=False)
    ds = sw.Dataset(X, labels=rng.integers(0, 2, 30))
    fires = sae.transform(X)[:, 0] > 0
    assert fires.any() and not fires.all()  # the tests below need one of each
    return sae, ds, int(np.flatnonzero(fires)[0]), int(np.flatnonzero(~fires)[0])


@pytest.fixture
def ex(one_unit):
    sae, ds, _, _ = one_unit
    return sw.Explorer(sae, ds)


def test_heatmap_caption_counts_one_unit_and_one_selected_sample(ex, one_unit):
    _, _, firing, _ = one_unit
    heatmap = sw.ActivationHeatmap(ex)
    assert "the 1 unit firing most often" in heatmap.caption.value
    ex.selection.samples = [firing]
    caption = heatmap.caption.value
    assert "rows: 1 of 1 selected sample ·" in caption
    assert "the 1 unit most enriched in it" in caption


def test_heatmap_caption_counts_one_silent_unit(ex, one_unit):
    _, _, _, silent = one_unit
    heatmap = sw.ActivationHeatmap(ex)
    ex.selection.samples = [silent]
    assert "none of the units fires on it (1 silent unit shown)" in heatmap.caption.value


def test_heatmap_card_counts_one_active_unit(ex, one_unit):
    _, _, firing, _ = one_unit
    heatmap = sw.ActivationHeatmap(ex)
    ex.selection.probe_sample = firing
    assert "· 1 active unit ·" in heatmap.card_title.value


def test_heatmap_caption_counts_one_row(one_unit):
    sae, ds, _, _ = one_unit
    heatmap = sw.ActivationHeatmap(sw.Explorer(sae, ds[:1]))
    assert "rows: 1 sample (no selection" in heatmap.caption.value


def test_inspector_counts_one_sample(one_unit):
    sae, ds, firing, silent = one_unit
    inspector = sw.UnitInspector(sw.Explorer(sae, ds[[firing]]))
    inspector.selection.unit = 0
    assert "fires on 1 of 1 sample (" in inspector.stats.value
    dead = sw.UnitInspector(sw.Explorer(sae, ds[[silent]]))
    dead.selection.unit = 0
    assert "it fires on none of the 1 sample," in dead.dead_note.value


def test_unit_table_caption_counts_one_unit_and_one_selected_sample(ex, one_unit):
    _, _, firing, _ = one_unit
    table = UnitTable(ex)
    assert table.caption.value.startswith("1 of 1 unit shown ·")
    ex.selection.samples = [firing]
    assert "enrichment in the 1 selected sample" in table.caption.value


def test_prefix_slider_counts_one_unit(ex):
    assert "first 1 of 1 unit:" in PrefixSlider(ex).info.value


def test_pca_brush_counts_one_selected_sample(ex):
    brush = sw.PCABrush(ex)
    ex.selection.samples = [0]
    assert brush.count.value == "<b>1</b> sample selected"


def test_export_link_counts_one_row(ex):
    assert csv_download_html(ex, [0]).endswith("(1 row)")


def test_training_outcome_counts_one_step():
    assert outcome(1, None, None) == "done: 1 step"
    assert outcome(2, None, None) == "done: 2 steps"


def test_training_monitor_dead_note_counts_one_training_sample():
    monitor = sw.TrainingMonitor(sw.SAE(n_units=4, k=1, dead_window=1))
    assert "the last 1 training sample." in monitor.dead_note.value


def test_explorer_and_comparison_reprs_count_one_unit(ex, one_unit):
    sae, ds, _, _ = one_unit
    assert "with 1 unit," in repr(ex)
    other = sw.Explorer(sae, ds)
    assert "a: 1 unit, b: 1 unit," in repr(sw.Comparison(ex, other, names=("a", "b")))


def test_refit_error_counts_one_unit(one_unit):
    _, ds, _, _ = one_unit
    two = sw.SAE(n_units=2, k=1, epochs=1, batch_size=8, seed=0).fit(ds.X, progress=False)
    ex = sw.Explorer(two, ds)
    two.set_params(n_units=1).fit(ds.X, progress=False)
    with pytest.raises(ValueError, match="sae now has 1 unit but"):
        _ = ex.codes


def test_probe_value_error_counts_one_grid_value():
    selection = Selection(1, 1, {"a": SimpleNamespace(values=[0.5])}, probe_attribute="a")
    with pytest.raises(SelectionError, match="nearest of its 1 grid value\\)"):
        selection.probe_value = 3.0


# ------------------------------------------------------------ long label names, cut and whole

LONG = "a very long class name that goes on and on, label"


@pytest.fixture(scope="module")
def long_names(one_unit):
    sae, ds, _, _ = one_unit
    names = [f"{LONG} {i}" for i in range(2)]
    return sw.Explorer(sae, sw.Dataset(ds.X, labels=ds.labels, label_names=names)), names


def test_shortened_cuts_visibly_to_the_room():
    assert shortened("short", 8) == "short"
    assert shortened("a long name", 8) == "a long …" and len(shortened("a long name", 8)) == 8


def test_names_differing_at_their_ends_stay_apart_when_shortened():
    names = ["handwritten digit of class 3", "handwritten digit of class 7", "eight"]
    assert shortened_apart(names, 14) == ["handwr…class 3", "handwr…class 7", "eight"]
    assert all(len(s) <= 14 for s in shortened_apart(names, 14))
    assert shortened_apart(["alpha long name", "beta long name"], 8) == ["alpha l…", "beta lo…"]
    assert shortened_apart(["aaaa1", "aaaa2"], 1) == ["…", "…"]  # no room: cut all the same


def test_unit_table_shortens_long_labels_and_its_tooltip_names_them_whole(long_names):
    ex, names = long_names
    table = UnitTable(ex)
    ex.selection.unit = 0
    top = int(table.stats.top_label[0])
    row = dict((unit, text) for text, unit in table.table.options)[0]
    assert row.endswith("  " + shortened_apart(names, LABEL_ROOM)[top]) and "…" in row
    assert table.table.tooltip == f"unit 0: mostly label {names[top]}"
    ex.selection.unit = None
    assert table.table.tooltip is None


def test_inspector_shortens_label_ticks_and_a_hovered_bar_names_its_label(long_names):
    ex, names = long_names
    inspector = sw.UnitInspector(ex, unit=0)
    ticks = inspector._label_axis.tick_labels
    shown = shortened_apart(names, LABEL_TICK_ROOM)
    assert ticks == {str(i): tick for i, tick in enumerate(shown)}
    assert len(set(ticks.values())) == len(names)  # the names differ at their ends only
    # what bqplot sends when the pointer enters bar 1 (its real message handler)
    inspector.label_bars._handle_custom_msgs(None, {"event": "hover", "data": {"index": 1}})
    share = float(np.asarray(inspector.label_bars.y)[1])
    assert inspector.label_tip.value == (
        f"<b>{names[1]}</b>: {100 * share:.0f}% of the samples it fires on"
    )
