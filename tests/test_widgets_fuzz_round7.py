"""Fuzz round 7 of the views and the language-model path: sequences of actions, unusual data
and messages earlier rounds did not try. Each test pins a defect found (the fix is in the
commit that added it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from tiny_fits import fit_tiny

import sae_widgets as sw

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")

RNG = np.random.default_rng(0)
X6 = RNG.random((40, 6)).astype(np.float32)
IMAGES = RNG.random((40, 2, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def pictured() -> sw.Explorer:
    """An Explorer of 40 six-pixel (2 x 3) pictures."""
    ds = sw.Dataset(X6, images=IMAGES)
    return sw.Explorer(fit_tiny(ds.X), ds)


# ---- the heatmap's sample card after its sample is cleared ------------------------------------


@pytest.mark.parametrize("images", [True, False])
def test_the_sample_card_shows_no_stale_sample_once_the_probe_sample_is_cleared(images) -> None:
    # the title said "click the strip ..." but the pictures (or lines) of the last sample
    # stayed drawn under it: after selection.clear() the card showed a sample no one picked
    ds = sw.Dataset(X6, images=IMAGES if images else None)
    ex = sw.Explorer(fit_tiny(ds.X), ds)
    heatmap = sw.ActivationHeatmap(ex)
    ex.selection.probe_sample = 5
    assert heatmap.card.figure.layout.display != "none"
    ex.selection.clear()
    assert "click the strip" in heatmap.card_title.value
    assert heatmap.card.figure.layout.display == "none"
    assert heatmap.card_input.value == ""
    ex.selection.probe_sample = 7
    assert heatmap.card.figure.layout.display != "none"
    assert "sample 7" in heatmap.card_title.value


# ---- a probe attribute dropdown told "no option" by the browser --------------------------------


def _shift(rows: Any, value: float) -> np.ndarray:
    return X6[rows] + value


def _gain(rows: Any, value: float) -> np.ndarray:
    return X6[rows] * value


ATTRIBUTES = {
    "shift": sw.Attribute("shift", [-1.0, 0.0, 1.0], _shift),
    "gain": sw.Attribute("gain", [0.5, 1.0, 2.0], _gain),
}


def test_a_probe_dropdown_message_of_no_index_is_ignored() -> None:
    # {"index": null} (a Dropdown left with no option) set probe_attribute to None and the
    # sweep raised TypeError ("attribute must provide name, values and sweep()"): the
    # dropdown then showed nothing over the last attribute's curves
    ds = sw.Dataset(X6, attributes=ATTRIBUTES)
    ex = sw.Explorer(fit_tiny(ds.X), ds)
    probe = sw.ProbeSlider(ex, attribute="gain")
    probe.attribute.set_state({"index": None})
    assert ex.selection.probe_attribute == "gain"
    assert probe.attribute.value == "gain" == probe.result.attribute
    probe.attribute.set_state({"index": 0})  # a real pick still works
    assert ex.selection.probe_attribute == "shift" == probe.result.attribute


# ---- toggle buttons told "no button" by the browser ----------------------------------------


def test_toggle_buttons_keep_their_choice_when_a_message_unpicks_every_button() -> None:
    # {"index": null} left the PCA view's mode None (every later brush raised ValueError:
    # "mode: expected one of ...") and its colour choice None (every point grey, the
    # activation legend over label colours)
    labels = np.arange(40) % 3
    ds = sw.Dataset(X6, labels=labels)
    ex = sw.Explorer(fit_tiny(ds.X), ds)
    pca = sw.PCABrush(ex)
    colors = pca.point_colors
    for buttons in (pca.mode, pca.color_by, pca.select_with):
        before = buttons.value
        buttons.set_state({"index": None})
        assert buttons.value == before
    assert pca.point_colors == colors
    pca._drawn([1, 2, 3])  # what a lasso does
    assert ex.selection.samples == [1, 2, 3]
    pca.mode.set_state({"index": 1})  # a real pick still works
    assert pca.mode.value == "add"


# ---- names and tokens holding bidirectional controls -----------------------------------------

# A right-to-left override (U+202E) in a label name or a token reverses everything after it
# on the line, up to the end of the paragraph: "label ‮abc · 3 active units" showed the
# card's own words backwards. Inside a <bdi> (an isolate) it stops at the name's end.
RLO = "\u202e"


def _outside_isolates(text: str) -> str:
    import re

    return re.sub(r"<bdi[^>]*>.*?</bdi>", "", text, flags=re.S)


def test_a_label_name_with_a_bidi_override_stays_inside_its_name() -> None:
    names = np.array([f"{RLO}evil", "plain", f"x{RLO}" + "y" * 50])
    ds = sw.Dataset(X6, labels=names[np.arange(40) % 3])
    ex = sw.Explorer(fit_tiny(ds.X), ds)
    board = ex.dashboard()
    inspector, heatmap = board.inspector, board.heatmap
    from sae_widgets.widgets._legend import hover_card

    for unit in range(ex.n_units):
        ex.selection.unit = unit
        for sample in range(3):
            ex.selection.probe_sample = sample
            texts = [inspector.stats.value, heatmap.card_title.value, board.brush.legend.value]
            texts.append(hover_card(ex, sample, unit))
            inspector._label_hovered(None, {"data": {"index": 0}})
            texts.append(inspector.label_tip.value)
            for text in texts:
                assert RLO not in _outside_isolates(text), text


def test_a_token_with_a_bidi_override_stays_inside_the_sample_cards_token() -> None:
    from sae_widgets.data.tokens import Documents, TokenRows

    text = f"ab{RLO}cd"
    spans = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]])
    documents = Documents(texts=[text], token_ids=[np.arange(5)], offsets=[spans])
    tokens = TokenRows(np.zeros(5, np.int64), np.arange(5), np.arange(5), documents)
    ds = sw.Dataset(X6[:5], tokens=tokens)
    ex = sw.Explorer(fit_tiny(ds.X, batch_size=4), ds)
    heatmap = sw.ActivationHeatmap(ex)
    ex.selection.probe_sample = 2
    assert RLO in heatmap.card_title.value
    assert RLO not in _outside_isolates(heatmap.card_title.value)


# ---- a gallery of few pictures ---------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5])
def test_a_gallery_of_fewer_pictures_than_columns_draws_them_at_their_usual_size(n) -> None:
    # the grid was only n pictures wide, stretched over the whole figure: a unit firing on
    # one sample showed one 8 x 8 digit 360 px wide (a 579 px tall panel, against 110 px for
    # a row of eight), the inspector jumping in height from unit to unit
    from sae_widgets.widgets._panels import SampleGallery

    images = np.random.default_rng(0).random((16, 8, 8)).astype(np.float32)
    picked: list[int] = []
    gallery = SampleGallery(picked.append, images=images, n_cols=8, width=360)
    gallery.show(np.arange(8), np.ones(8))
    full_row = gallery.figure.layout.height
    gallery.show(np.arange(n), np.ones(n))
    assert gallery.figure.layout.height == full_row
    assert gallery.sample_at(4.0, float(gallery.y_scale.max) - 4.0) == 0
    assert gallery.sample_at(7 * 9 + 4.0, float(gallery.y_scale.max) - 4.0) is None  # blank


# ---- complex pictures and factors ------------------------------------------------------------


@pytest.mark.parametrize("field", ["images", "factors"])
def test_complex_images_or_factors_are_refused_as_x_is(field) -> None:
    # X of complex numbers was refused, but complex images were drawn from their real part
    # (numpy's ComplexWarning, hidden) and a complex factor broke the probe's start value
    values = (RNG.random((40, 2, 3)) + 1j).astype(np.complex64)
    given = {"images": values} if field == "images" else {"factors": {"a": values[:, 0, 0]}}
    with pytest.raises(TypeError, match=f"{field}.*real numbers.*complex64"):
        sw.Dataset(X6, **given)


def test_a_prompt_with_a_bidi_override_stays_inside_the_continuation() -> None:
    # the prompt's U+202E reversed the continuation's caption line ("unit 3 on the
    # continuation: ...", after a <br> of the same paragraph) as well
    from test_fuzz_language_round5 import TEXTS, CharTokenizer, TinyLM

    torch.manual_seed(0)
    lm, tok = TinyLM().eval(), CharTokenizer()
    ids = [np.asarray(tok(t)["input_ids"], np.int64) for t in TEXTS]
    with torch.no_grad():
        rows = torch.cat([lm.block(lm.embed(torch.from_numpy(i))) for i in ids]).numpy()
    ds = sw.Dataset(rows)
    sae = fit_tiny(ds.X, n_units=16, k=3, batch_size=16)
    ex = sw.Explorer(sae, ds, model=lm, layer="block", tokenizer=tok)
    view = sw.SteeringView(ex, prompt=f"ab{RLO}c", max_new_tokens=3)
    ex.selection.unit = 3
    view.slider.value = float(view.slider.max)
    assert RLO in view.texts.value and "on the continuation" in view.texts.value
    assert RLO not in _outside_isolates(view.texts.value)


# ---- booleans in browser messages ------------------------------------------------------------


def test_a_bool_in_a_hover_or_button_message_is_no_index(pictured) -> None:
    # True is an int to Python: {"index": true} named label slot 1 in the label tooltip and
    # {"unit": true} clicked the button of unit 1
    from sae_widgets.widgets._unit_buttons import UnitButtons

    labels = np.arange(40) % 3
    ds = sw.Dataset(X6, labels=labels)
    ex = sw.Explorer(fit_tiny(ds.X), ds)
    inspector = sw.UnitInspector(ex, unit=0)
    inspector.label_tip.value = "before"
    inspector._label_hovered(None, {"data": {"index": True}})
    assert inspector.label_tip.value == "before"
    clicked: list[int] = []
    buttons = UnitButtons("units", clicked.append)
    buttons.show([0, 1, 2])
    buttons._browser_click(buttons, {"unit": True}, [])
    assert clicked == []
    buttons._browser_click(buttons, {"unit": 1}, [])
    assert clicked == [1]


# ---- searching the unit table for a label written in other digits ------------------------------


@pytest.mark.parametrize("name", ["٣", "²", "३"])
def test_the_unit_tables_search_finds_a_label_of_non_ascii_digits(name) -> None:
    # str.isdigit() is true of "٣" (Arabic-Indic three), "²" and "३": the search took them for
    # a unit number, matched no unit and showed an empty table
    names = np.array([name, "other"])
    ds = sw.Dataset(X6, labels=names[(X6[:, 0] > 0.5).astype(int)])
    ex = sw.Explorer(fit_tiny(ds.X), ds)
    table = sw.UnitTable(ex)
    table.search.value = name
    expected = [
        u for u in range(ex.n_units) if table._label_name(int(table.stats.top_label[u])) == name
    ]
    assert expected, "no unit is mostly of that label"
    assert sorted(table.order.tolist()) == expected


# ---- malformed clicks on the comparison's points -----------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        {"data": None},
        {"data": []},
        {"data": {"index": "1"}},
        {"data": {"index": True}},
        {"data": {"index": 1.5}},
        {"data": {"index": float("nan")}},
        {"data": {"index": -1}},
        {"data": {"index": 10**9}},
    ],
)
def test_malformed_clicks_on_the_comparisons_points_are_ignored(event) -> None:
    # the handler raised AttributeError / ValueError / TypeError into the comm for these
    # (nan: int(nan)), and took 1.5 for point 1 and True for point 1
    ds = sw.Dataset(X6)
    cmp = sw.compare(fit_tiny(ds.X, seed=0), fit_tiny(ds.X, seed=1), ds)
    view = sw.CompareView(cmp)
    kind = next(k for k, units in view.units.items() if len(units) > 1)
    view._clicked(view.scatters[kind], event)
    assert cmp.selection.unit is None
    view._clicked(view.scatters[kind], {"data": {"index": 1}})  # a real click
    assert cmp.selection.unit == int(view.units[kind][1])


@pytest.mark.parametrize("images", [True, False])
@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"click_x": "a", "click_y": 1.0},
        {"click_x": float("nan"), "click_y": 1.0},
        {"click_x": 1.0, "click_y": float("inf")},
        {"click_x": True, "click_y": 1.0},
        {"click_x": [1], "click_y": 1.0},
    ],
)
def test_malformed_clicks_on_a_gallery_are_ignored(images, data) -> None:
    # float("a"), int(nan) and int(inf) raised into the comm; an event that is no dict too
    from sae_widgets.widgets._panels import SampleGallery

    picked: list[int] = []
    source = {"images": IMAGES} if images else {"X": X6}
    gallery = SampleGallery(picked.append, **source)
    gallery.show([3, 4], [1.0, 0.5])
    gallery._clicked(None, {"data": data})
    gallery._clicked(None, data)
    assert picked == []


# ---- malformed selections from the WebGL scatter -------------------------------------------------


def test_malformed_webgl_selections_and_outlines_are_ignored() -> None:
    # a 2-D selection of one row selected its two points as a click; a fraction was cut to a
    # point; a lasso outline with NaN raised ValueError ("polygon must hold finite
    # coordinates") into the comm
    from sae_widgets.widgets._gl_scatter import GLScatter

    drawn: list[np.ndarray] = []
    outlines: list[np.ndarray] = []
    coords = RNG.random((50, 2))
    scatter = GLScatter(coords, drawn.append, on_outline=outlines.append)
    for bad in (np.array([[1, 2]]), np.array([0.5]), np.array([np.nan])):
        scatter._selected({"new": bad})
    scatter._outlined({"new": np.array([[np.nan, 0.0], [1.0, 1.0], [0.0, 1.0]])})
    scatter._outlined({"new": np.array([[np.inf, 0.0], [1.0, 1.0], [0.0, 1.0]])})
    assert drawn == [] and outlines == []
    scatter._selected({"new": np.array([3])})  # a real click
    scatter._outlined({"new": np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])})  # a lasso
    assert [d.tolist() for d in drawn] == [[3]] and len(outlines) == 1


def test_malformed_svg_lasso_marks_are_ignored() -> None:
    # the same messages on the SVG lasso's target: a 2-D mark selected its two points, a
    # fraction was cut to a point, NaN was cast to a garbage index (RuntimeWarning)
    ds = sw.Dataset(X6)
    ex = sw.Explorer(fit_tiny(ds.X), ds)
    pca = sw.PCABrush(ex)
    assert pca.lasso_target is not None
    for bad in (np.array([[1, 2]]), np.array([0.5]), np.array([np.nan])):
        pca.lasso_target.selected = bad
    assert ex.selection.samples == []
    pca.lasso_target.selected = np.array([1.0, 2.0])  # whole numbers as floats: points
    assert ex.selection.samples == [1, 2]


# ---- a monitor fed the tensors of a user's own training loop ----------------------------------


def test_a_monitor_records_metrics_given_as_zero_dim_tensors_or_arrays() -> None:
    # {"loss": loss.detach()} from a user's own loop: a 0-d tensor was no number to the
    # monitor, so the loss was dropped from its history, curve and status line in silence
    # (and a tensor step was refused)
    monitor = sw.TrainingMonitor(sw.SAE(n_units=8, k=2), min_interval=0, trailing=False)
    for step in range(3):
        monitor(
            {
                "step": torch.tensor(step),
                "loss": torch.tensor(1.0 / (step + 1)),
                "l0": np.array(2.0),
            }
        )
    assert [entry["loss"] for entry in monitor.history] == pytest.approx([1.0, 0.5, 1 / 3])
    assert [entry["step"] for entry in monitor.history] == [0, 1, 2]
    assert "loss" in monitor.status.value and len(np.asarray(monitor.lines["loss"].y)) == 3
    for bad in (torch.tensor([1.0, 2.0]), torch.tensor(True), np.array([1.0])):
        monitor({"step": 3, "loss": bad})  # not one real number: left out, as before
        assert "loss" not in monitor.history[-1]
