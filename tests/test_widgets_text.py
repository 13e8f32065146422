"""Text-native views on MiniLM token activations: tokens in context, escaped HTML."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import sae_widgets as sw
from sae_widgets.widgets.text import context_label, tokens_html

SCRIPT = "Beware <script>alert('x')</script> & other <b>markup</b> in a docstring."


@pytest.fixture(scope="module")
def text_explorer() -> sw.Explorer:
    lm = sw.models.minilm()
    corpus = sw.datasets.sentences(30, seed=0)
    corpus.texts.append(SCRIPT)  # a corpus line holding <script>
    for key, value in corpus.factors.items():
        corpus.factors[key] = np.append(value, 0)
    corpus.labels = np.append(corpus.labels, 0)
    ds = sw.collect_activations(lm.model, "encoder.layer.2", data=corpus, tokenizer=lm.tokenizer)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sae = sw.SAE(n_units=24, k=4, epochs=30, batch_size=64, seed=0).fit(ds.X, progress=False)
    finally:
        torch.set_num_threads(threads)
    return sw.Explorer(sae, ds)


def script_rows(ex: sw.Explorer) -> np.ndarray:
    return np.flatnonzero(ex.dataset.tokens.doc == len(ex.dataset.tokens.texts) - 1)


def test_tokens_html_escapes_marks_and_titles() -> None:
    out = tokens_html(["a", " <script>", "&"], [0.0, 2.0, 1.0], vmax=2.0, marked=1)
    assert "<script>" not in out
    assert "&lt;script&gt;" in out and "&amp;" in out
    assert out.count("<span") == 3
    assert 'title="activation 2"' in out
    assert "outline" in out.split("</span>")[1]  # the marked token
    assert "rgba(255, 127, 14, 0.85)" in out  # full colour at vmax


def test_inspector_shows_top_tokens_in_context_escaped(text_explorer) -> None:
    ex = text_explorer
    rows = script_rows(ex)
    unit = int(np.argmax(ex.codes.dense(rows).max(axis=0)))  # fires on the <script> line
    inspector = sw.UnitInspector(ex, unit=unit)
    assert inspector.top_tokens is not None
    shown = inspector.top_tokens.contexts.value
    assert shown.count('class="sw-context"') == len(inspector.summary.top_samples)
    assert "<script>" not in shown and "<b>markup" not in shown
    # the panel drawing rows of the <script> line, with a context long enough for all of it
    rows = script_rows(ex)
    inspector.top_tokens.show(unit, rows[:2], ex.codes.dense(rows[:2], [unit])[:, 0])
    inspector.top_tokens.context.value = "32"
    shown = inspector.top_tokens.contexts.value
    text = re.sub(r"<span[^>]*>|</span>", "", shown)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; other &lt;b&gt;markup" in text
    assert "<script>" not in shown and "<b>markup" not in shown
    assert inspector.top_tokens.logits.value == ""  # MiniLM is an encoder: no unembedding


def test_heatmap_rows_named_by_token_and_card_shows_the_document(text_explorer) -> None:
    ex = text_explorer
    heatmap = sw.ActivationHeatmap(ex)
    labels = list(heatmap.y_axis.tick_labels.values())
    assert labels and all("⟦" in label for label in labels)
    row = int(script_rows(ex)[2])
    ex.selection.unit = 0
    ex.selection.probe_sample = row
    card = heatmap.card_text.value
    assert "&lt;script&gt;" in re.sub(r"<span[^>]*>|</span>", "", card)
    assert "<script>" not in card
    assert "outline" in card
    assert "&lt;" in heatmap.card_title.value or "token <code>" in heatmap.card_title.value
    assert context_label(ex.dataset.tokens, row).count("⟦") == 1


def test_probe_walks_a_word_slot_of_the_sentence(text_explorer) -> None:
    ex = text_explorer
    tokens = ex.dataset.tokens
    last = int(np.flatnonzero(tokens.doc == 0)[-1])  # the final "." of sentence 0
    ex.selection.probe_sample = last
    probe = sw.ProbeSlider(ex, attribute="tense")
    assert [label for label, _ in probe.slider.options] == ["past", "present", "future"]
    ex.selection.probe_value = 2.0
    shown = probe.sentence.value
    assert "future" in shown and "will" in shown
    assert re.search(r"<span style='outline[^>]*>\.</span>", shown)  # the "." is read
    assert probe.result.response.shape == (3, ex.n_units)


def test_pca_hover_and_lasso_on_token_points(text_explorer) -> None:
    ex = text_explorer
    ex.selection.samples = []
    dashboard = ex.dashboard()
    brush = dashboard.brush
    row = int(script_rows(ex)[1])
    brush.scatter.hovered_point = row  # what the browser reports under the mouse
    assert "&lt;script&gt;" in re.sub(r"<[bs][^>]*>|</[bs][a-z]*>", "", brush.hover.value)
    assert "<script>" not in brush.hover.value
    before = dashboard.heatmap.data.rows.copy()
    picked = np.arange(10, 40)
    brush.lasso_target.selected = picked  # what the browser reports after a lasso
    assert ex.selection.samples == picked.tolist()
    assert set(dashboard.heatmap.data.rows.tolist()) <= set(picked.tolist())
    assert not np.array_equal(before, dashboard.heatmap.data.rows)
    dashboard.close()


def test_compare_view_shows_top_tokens_in_context_on_both_sides(text_explorer) -> None:
    ex = text_explorer
    other = sw.SAE(n_units=32, k=4, epochs=10, batch_size=64, seed=1).fit(
        ex.dataset.X, progress=False
    )
    cmp = sw.compare(sw.Explorer(ex.sae, ex.dataset), sw.Explorer(other, ex.dataset))
    view = sw.CompareView(cmp)
    rows = script_rows(ex)
    unit = int(np.argmax(cmp.ex_a.codes.dense(rows).max(axis=0)))  # fires on the <script> line
    cmp.selection.unit = unit
    own = view.panel_a.own
    assert own.top_tokens is not None and own.top_tokens.unit == unit
    shown = own.top_tokens.contexts.value
    assert shown.count('class="sw-context"') == len(cmp.top_samples(unit, n=8)[0])
    assert "<script>" not in shown
    match = view.panel_a.matches[0]
    assert match.top_tokens is not None and match.top_tokens.unit == match.unit
    assert match.top_tokens.ex is cmp.ex_b  # B's tokens, on B's activation scale
