"""Fuzz round 6 of the views and the language-model path: inputs earlier rounds did not try.
Each test pins a defect found (the fix is in the commit that added it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tiny_fits import fit_tiny

import sae_widgets as sw

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


def _one_line_per_row(mark: Any, n_lines: int) -> None:
    """What the browser draws: `n_lines` lines (y rows), each as long as x (bqplot squeezes
    a (k, 1) y into one k-point line, and refuses a (1, 1) one)."""
    x, y = np.asarray(mark.x), np.asarray(mark.y)
    if n_lines == 1:
        assert y.ndim == 1 and y.shape == x.shape
    else:
        assert y.shape == (n_lines, x.shape[0])
    assert x.shape[0] >= 2 or mark.marker is not None  # one point: drawn as a dot


# ---- lines of one point (bqplot squeezes singleton axes) -------------------------------------

RNG = np.random.default_rng(0)
X6 = RNG.random((40, 6)).astype(np.float32)


def test_inputs_of_one_dimension_draw_the_sample_and_its_reconstruction_as_two_dots() -> None:
    # d=1: the (2, 1) pair became one 2-point line over an x of one point
    ds = sw.Dataset(X6[:, :1])
    ex = sw.Explorer(fit_tiny(ds.X), ds)
    heatmap = sw.ActivationHeatmap(ex)
    ex.selection.probe_sample = 3
    lines = heatmap.card.lines
    _one_line_per_row(lines, 2)
    assert np.asarray(lines.y)[:, 0] == pytest.approx(
        [ds.X[3, 0], ex.reconstruct([3])[0, 0]], rel=1e-5
    )


def _gain(rows: Any, value: float) -> np.ndarray:
    return X6[rows] * value


@pytest.mark.parametrize("n_units", [8, 1])
def test_an_attribute_of_one_value_draws_one_dot_per_unit(n_units) -> None:
    # a one-value grid: the curves' (k, 1) y was squeezed (k > 1) or refused with a raw
    # TraitError from bqplot that failed the whole dashboard (k = 1)
    ds = sw.Dataset(X6, attributes={"gain": sw.Attribute("gain", [2.0], _gain)})
    ex = sw.Explorer(fit_tiny(ds.X, n_units=n_units, k=1), ds)
    board = ex.dashboard()
    probe = board.probe
    assert probe is not None
    _one_line_per_row(probe.curves, len(probe.shown_units))
    ex.selection.unit = 0
    _one_line_per_row(probe.focus_curve, 1)
    assert [value for _, value in probe.slider.options] == [2.0]


# ---- a token's label in context keeps to its length ------------------------------------------


def _long_token_rows() -> Any:
    from sae_widgets.data.tokens import Documents, TokenRows

    text = "before words here " + "x" * 29 + " after words"
    spans = np.array([[0, 6], [7, 12], [13, 17], [18, 47], [48, 53], [54, 59]])
    documents = Documents(texts=[text], token_ids=[np.arange(6)], offsets=[spans])
    return TokenRows(np.zeros(6, np.int64), np.arange(6), np.arange(6), documents)


@pytest.mark.parametrize("max_chars", range(3, 60))
def test_a_token_in_context_label_is_at_most_max_chars(max_chars) -> None:
    # a room of one character kept the whole text before the token (before[-0:]): 49
    # characters for max_chars=33; a token longer than max_chars was not cut
    from sae_widgets.widgets.text import context_label

    tokens = _long_token_rows()
    for row in range(len(tokens)):
        label = context_label(tokens, row, max_chars=max_chars)
        assert len(label) <= max_chars, label
        assert label.count("⟦") == 1 and label.count("⟧") == 1
    assert "xxx" in context_label(tokens, 3, max_chars=max_chars) or max_chars < 7


# ---- pictures of wide images ------------------------------------------------------------------


def _png_size(html_text: str) -> tuple[int, int]:
    import base64
    import re

    data = base64.b64decode(re.search(r"base64,([^\"']+)", html_text).group(1))
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize("shape", [(1, 200), (2, 300), (200, 1), (8, 8), (1, 1), (4, 6, 3)])
def test_a_hover_picture_fits_its_size_whatever_the_images_shape(shape) -> None:
    # the zoom came from the height alone: a (1, 200) image was drawn 64 x 12,800 pixels
    from sae_widgets.widgets._legend import picture_html

    image = np.random.default_rng(0).random(shape)
    width, height = _png_size(picture_html(image, size_px=64))
    assert max(width, height) <= max(64, *shape[:2])
    assert width >= shape[1] and height >= shape[0]  # every pixel kept


@pytest.mark.parametrize("shape", [(200, 2), (400, 1, 3), (1, 400), (2, 200), (8, 8)])
def test_pictures_of_tall_or_wide_images_keep_a_viewable_height(shape) -> None:
    # heights followed the aspect ratio unbounded: a (400, 1, 3) image made figures 40,000
    # pixels tall, a (1, 400) one a plot 0 pixels high under its title
    import bqplot

    from sae_widgets.widgets._view import close_tree

    X = np.random.default_rng(0).random((30, int(np.prod(shape)))).astype(np.float32)
    ds = sw.Dataset(X, images=X.reshape(30, *shape))
    ex = sw.Explorer(fit_tiny(X, epochs=1), ds)
    board = ex.dashboard()
    ex.selection.unit, ex.selection.probe_sample = 1, 2
    figures = [board.heatmap.card.figure, board.inspector.gallery.figure]
    figures += [w for w in _walk(board.inspector) if isinstance(w, bqplot.Figure)]
    for figure in figures:
        height = figure.layout.height
        if not (height and height.endswith("px")):
            continue
        plot = float(height[:-2]) - figure.fig_margin["top"] - figure.fig_margin["bottom"]
        assert 20 <= plot <= 800, (figure.title, height)
    close_tree(board)


def _walk(widget: Any) -> Any:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_a_long_gallery_of_square_images_keeps_their_aspect() -> None:
    # the height bound is per row of pictures: 64 square digits in 8 rows are not squashed
    from sae_widgets.widgets._panels import SampleGallery

    images = np.random.default_rng(0).random((64, 8, 8)).astype(np.float32)
    gallery = SampleGallery(lambda _sample: None, images=images, n_cols=8, width=360)
    gallery.show(np.arange(64), np.ones(64))
    margins = gallery.figure.fig_margin["top"] + gallery.figure.fig_margin["bottom"]
    plot = float(gallery.figure.layout.height[:-2]) - margins
    grid_h, grid_w = gallery.y_scale.max, gallery.x_scale.max
    assert plot == pytest.approx(360 * grid_h / grid_w, abs=1)


# ---- token views after a refit -----------------------------------------------------------------


def _token_dataset(n_docs: int = 6, d: int = 6) -> sw.Dataset:
    """Rows of word tokens of a few short texts (as collect_activations makes them)."""
    from sae_widgets.data.tokens import Documents, TokenRows

    texts = [f"word{i} and <b>more</b> & text {i}" for i in range(n_docs)]
    offsets = []
    for text in texts:
        starts = [0] + [i + 1 for i, c in enumerate(text) if c == " "]
        ends = [i for i, c in enumerate(text) if c == " "] + [len(text)]
        offsets.append(np.array(list(zip(starts, ends)), np.int64))
    ids = [np.arange(len(o), dtype=np.int64) for o in offsets]
    documents = Documents(texts=texts, token_ids=ids, offsets=offsets)
    doc = np.concatenate([np.full(len(i), k) for k, i in enumerate(ids)])
    pos = np.concatenate(ids)
    X = np.random.default_rng(1).random((len(doc), d)).astype(np.float32)
    return sw.Dataset(X, tokens=TokenRows(doc, pos, pos, documents))


def test_top_tokens_forget_a_unit_that_a_refit_removed() -> None:
    # a refit to fewer units cleared the focus, but the top-tokens panel kept unit 15: a click
    # on its context length then raised "unit must be in [0, 8)" from the browser's event
    ds = _token_dataset()
    sae = fit_tiny(ds.X, n_units=16)
    ex = sw.Explorer(sae, ds)
    inspector = sw.UnitInspector(ex, unit=15)
    top = inspector.top_tokens
    assert top is not None and top.unit == 15
    sae.set_params(n_units=8).fit(ds.X, progress=False)  # the same estimator, refitted
    ex.refresh()
    assert ex.selection.unit is None
    assert top.unit is None and top.contexts.value == "" and top.logits.value == ""
    top.context.value = "32"  # the browser's click: nothing to draw, nothing raised
    assert top.contexts.value == ""
    ex.selection.unit = 7
    assert top.unit == 7 and 'class="sw-context"' in top.contexts.value


# ---- logit effects of byte tokens ---------------------------------------------------------------


def _byte_level_tokens() -> Any:
    """TokenRows whose documents hold a byte-level BPE tokenizer (GPT-2's and SmolLM2's kind),
    built offline: its vocabulary is the 256 bytes, spelled in its own alphabet."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from sae_widgets.data.tokens import Documents, TokenRows

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core)
    ids = np.asarray(tokenizer("a😀")["input_ids"], np.int64)
    documents = Documents(
        texts=["a😀"], token_ids=[ids], offsets=[np.array([[0, 1]] + [[1, 2]] * 4)],
        tokenizer=tokenizer,
    )  # fmt: skip
    return TokenRows(np.zeros(5, np.int64), np.arange(5), ids, documents), ids


def test_byte_tokens_of_logit_effects_are_spelled_as_their_bytes() -> None:
    # each of the 128 tokens of a byte that is part of a character decoded to "\ufffd": a
    # unit's logit effects listed several tokens all shown as "�"
    from sae_widgets.widgets.text import logit_html

    tokens, ids = _byte_level_tokens()
    spelled = tokens.vocab_text(ids.tolist())
    assert spelled == ["a", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]
    space = tokens.tokenizer.convert_tokens_to_ids("Ġ")
    assert tokens.vocab_text([space]) == [" "]
    shown = logit_html([(text, 1.0) for text in spelled], [])
    assert "\ufffd" not in shown and "&lt;0xF0&gt;" in shown
    assert tokens.token_text(1) == "😀"  # the text in context is still the character


# ---- the label legend of many classes -----------------------------------------------------------


def test_the_label_legend_says_when_classes_are_left_out_or_share_colours() -> None:
    # 50 classes: the legend named the first 20 as if they were all, in 10 colours unannounced
    import re

    labels = np.arange(100) % 50
    X = np.random.default_rng(0).random((100, 6)).astype(np.float32)
    ds = sw.Dataset(X, labels=labels, label_names=[f"c{i}" for i in range(50)])
    brush = sw.PCABrush(sw.Explorer(fit_tiny(X), ds), color_by="label")
    text = re.sub(r"<[^>]*>", "", brush.legend.value)
    assert "c19" in text and "c20" not in text
    assert "30 more" in text and "colours repeat" in text
    few = sw.Dataset(X, labels=np.arange(100) % 3)
    text = re.sub(r"<[^>]*>", "", sw.PCABrush(sw.Explorer(fit_tiny(X), few)).legend.value)
    assert "more" not in text and "repeat" not in text and "unlabelled" not in text
    # unlabelled samples (-1) are drawn grey: the legend said nothing about grey points
    some = sw.Dataset(X, labels=np.where(np.arange(100) < 50, -1, np.arange(100) % 3))
    legend = sw.PCABrush(sw.Explorer(fit_tiny(X), some)).legend.value
    assert "unlabelled" in legend and "#aaaaaa" in legend


def test_reprs_of_one_text_or_one_row_are_singular() -> None:
    # "TextCorpus(1 texts)", "TokenRows(5 rows from 1 documents)"
    assert repr(sw.TextCorpus(["a"])) == "TextCorpus(1 text)"
    with pytest.raises(IndexError, match=r"for 1 text; got 1$"):
        sw.TextCorpus(["a"])[1]
    assert repr(_byte_level_tokens()[0]) == "TokenRows(5 rows from 1 document)"
    assert "1 row from 1 document" in repr(_byte_level_tokens()[0][[0]])


def test_language_model_messages_of_one_are_singular() -> None:
    # "with 1 units", "prompt is 1 tokens", a dataset named "1 texts -> ..."
    from torch import nn

    from sae_widgets.sae.splice import Intervention

    sae = fit_tiny(X6, n_units=1, k=1)
    model = nn.Sequential(nn.Linear(6, 6), nn.ReLU())
    with pytest.raises(ValueError, match=r"for an SAE with 1 unit$"):
        Intervention(model, "1", sae, steer={3: 1.0})
    lm = sw.models.minilm()
    ds = sw.collect_activations(lm.model, "embeddings", data=["one text"], tokenizer=lm.tokenizer)
    assert ds.name.startswith("1 text -> ")


# ---- a compare view showing no matches ----------------------------------------------------------


def test_a_compare_view_of_no_match_columns_still_focuses_units() -> None:
    # n_show=0 was accepted, then focusing a unit raised "n must be at least 1" from the
    # Selection's observer (a click on a point in the browser failed the same way)
    a, b = fit_tiny(X6), fit_tiny(X6, seed=1)
    ex_a, ex_b = sw.Explorer(a, X6), sw.Explorer(b, X6)
    view = sw.CompareView(sw.compare(ex_a, ex_b), n_show=0)
    ex_a.selection.unit, ex_b.selection.unit = 0, 3
    assert view.panel_a.shown == [] and view.panel_b.shown == []
    assert "unit 0" in view.panel_a.title.value and "Hungarian partner" in view.panel_a.title.value
    assert "best matches" not in view.panel_a.title.value
    assert view.panel_a.own.unit == 0 and view.panel_b.own.unit == 3


# ---- the probe starts at the sample's own value -----------------------------------------------


@pytest.mark.parametrize("attribute", ["shape", "scale", "x"])
def test_the_probe_starts_at_the_samples_own_factor_value(attribute) -> None:
    # attributes without an identity (shapes' factors, templated sentences' words) started at
    # the middle of the grid: the "varied input" showed another shape than the sample's own
    # before the slider was touched
    ds = sw.datasets.shapes(n=60, size=8, seed=0)
    ex = sw.Explorer(fit_tiny(ds.X), ds)
    probe = sw.ProbeSlider(ex, attribute)
    grid = ex.attribute(attribute).values
    for sample in (3, 17):
        ex.selection.probe_sample = sample
        own = grid[np.argmin(np.abs(grid - ds.factors[attribute][sample]))]
        assert probe.slider.value == own
    ex.selection.probe_value = float(grid[0])  # a value the user chose is kept
    ex.selection.probe_sample = 3
    assert probe.slider.value == grid[0]


# ---- steering with another model's tokenizer ---------------------------------------------------


def test_steering_with_another_models_tokenizer_names_it() -> None:
    # a continuation raised torch's "IndexError: index out of range in self" from inside the
    # embedding (sw.metrics.evaluate already named the mismatch)
    from torch import nn

    class TinyLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.block = nn.Embedding(32, 8), nn.Linear(8, 8)
            self.head = nn.Linear(8, 32)

        def get_input_embeddings(self) -> nn.Embedding:
            return self.embed

        def forward(self, input_ids, attention_mask=None):
            return self.head(self.block(self.embed(input_ids)))

    class WideTokenizer:  # ids up to 999: another model's vocabulary
        def __call__(self, text, **_options):
            return {"input_ids": [ord(c) % 1000 for c in text]}

        def decode(self, ids):
            return "".join(chr(97 + i % 26) for i in ids)

    X = np.random.default_rng(0).random((40, 8)).astype(np.float32)
    ex = sw.Explorer(fit_tiny(X), X, model=TinyLM(), layer="block", tokenizer=WideTokenizer())
    with pytest.raises(ValueError, match=r"token id .* beyond the model's vocabulary of 32"):
        ex.steerer.continuation(1, 0.0, "hello", max_new_tokens=2)
    view = sw.SteeringView(ex, max_new_tokens=2)
    ex.selection.unit = 1
    assert "tokenizer does not match the model" in view.error.value


# ---- label names -------------------------------------------------------------------------------


def test_label_names_given_twice_are_refused() -> None:
    # ["a", "a"] was accepted: two classes every view, legend and CSV export called "a"
    with pytest.raises(
        ValueError, match=r"label_names must be distinct: 'a' names class 0 and class 2"
    ):
        sw.Dataset(X6[:3], labels=[0, 1, 2], label_names=["a", "b", "a"])
    with pytest.raises(ValueError, match="label_names must be distinct"):
        sw.TextCorpus(["x", "y"], labels=["p", "q"], label_names=["p", "q", "p"])
    assert sw.Dataset(X6[:2], labels=[0, 1], label_names=["a", "b"]).label_names == ["a", "b"]


def test_long_label_names_are_cut_in_lines_of_text_and_whole_on_hover() -> None:
    # a 2,000-character name was written whole into the legend (a nowrap line 2,000
    # characters long), the inspector's stats, the hover card and the sample card
    import html
    import re

    names = ["x" * 2000 + "<&>", "short"]
    ds = sw.Dataset(X6, labels=np.arange(40) % 2, label_names=names)
    ex = sw.Explorer(fit_tiny(X6), ds)
    board = ex.dashboard()
    board.brush.color_by.value = "label"
    ex.selection.unit = int(np.argmax(ex.codes.max_activation))
    ex.selection.probe_sample = 0
    board.brush._hovered({"new": 0})
    texts = [board.brush.legend.value, board.inspector.stats.value]
    texts += [board.brush.hover.value, board.heatmap.card_title.value]
    for text in texts:
        shown = html.unescape(re.sub(r"<[^>]*>", "", text))
        assert "x" * 41 not in shown, text[:200]
    assert f'title="{html.escape(names[0])}"' in board.brush.legend.value
    assert "short" in board.brush.legend.value


def test_lasso_marks_and_webgl_clicks_on_no_drawn_point_are_ignored() -> None:
    # a click message naming position 100 of 100 drawn points raised a raw IndexError; -1
    # selected the last drawn point
    X = np.random.default_rng(0).random((3100, 6)).astype(np.float32)
    ex = sw.Explorer(fit_tiny(X, batch_size=256, epochs=1), X)
    brush = sw.PCABrush(ex, max_points=100)
    assert brush.webgl
    for bad in ([100], [10**6], [-1]):
        brush.scatter.widget.selection = np.array(bad)
        assert ex.selection.samples == []
    brush.scatter.widget.selection = np.array([5])
    assert ex.selection.samples == [int(brush.shown[5])]
    # the SVG lasso alike: marks naming no point raised a SelectionError from the message
    svg = sw.PCABrush(sw.Explorer(fit_tiny(X6), X6))
    for bad in ([40], [-1]):
        svg.points.lasso_target.selected = np.array(bad)
        assert svg.selection.samples == []
    svg.points.lasso_target.selected = np.array([3, 40])
    assert svg.selection.samples == [3]
    brush = svg.points.brush  # a rectangle of NaN corners raised a ValueError
    brush.brushing = True
    brush.selected_x, brush.selected_y = np.array([np.nan, 1.0]), np.array([0.0, 1.0])
    brush.brushing = False
    assert svg.selection.samples == [3]


def test_a_failing_models_batch_of_one_text_is_singular() -> None:
    # "the model raised on a batch of 1 texts of 3 tokens"
    lm = sw.models.minilm()

    def fail(*_args: Any) -> None:
        raise RuntimeError("boom")

    handle = lm.model.encoder.layer[0].register_forward_pre_hook(fail)
    try:
        with pytest.raises(Exception, match=r"a batch of 1 text of \d+ tokens"):
            sw.collect_activations(lm.model, "encoder.layer.1", data=["hi"], tokenizer=lm.tokenizer)
    finally:
        handle.remove()
