"""The built-in text corpora and the probe attributes of templated sentences."""

from __future__ import annotations

import numpy as np
import pytest

import sae_widgets as sw
from sae_widgets.data.datasets._sentences import OBJECTS, SENTIMENTS, SUBJECTS
from sae_widgets.data.tokens import aligned_position


def test_docstrings_are_deterministic_distinct_paragraphs() -> None:
    corpus = sw.datasets.python_docstrings(300, seed=3)
    assert len(corpus) == 300
    assert list(corpus) == list(sw.datasets.python_docstrings(300, seed=3))
    assert len(set(corpus)) == 300
    assert all(40 <= len(text) <= 600 and "\n" not in text for text in corpus)
    assert corpus.label_names == list(sw.datasets.DOCSTRING_KINDS)
    assert set(corpus.labels.tolist()) <= {0, 1, 2}
    assert list(sw.datasets.python_docstrings(300, seed=4)) != list(corpus)
    with pytest.raises(ValueError, match="n_docs"):
        sw.datasets.python_docstrings(0)


def test_sentences_spell_their_factors() -> None:
    corpus = sw.datasets.sentences(500, seed=1, label="tense")
    assert len(set(corpus)) == 500
    f = corpus.factors
    for i, text in enumerate(corpus):
        words = text.rstrip(".").split()
        assert words[1] == SUBJECTS[f["subject"][i]][f["number"][i]]
        assert ("will" in words) == (f["tense"][i] == 2)
        assert words[-2:] == [SENTIMENTS[f["sentiment"][i]], OBJECTS[f["object"][i]]]
    np.testing.assert_array_equal(corpus.labels, f["tense"])
    assert corpus.variants["number"].render(0, 1).split()[1] == SUBJECTS[f["subject"][0]][1]
    with pytest.raises(ValueError, match="label"):
        sw.datasets.sentences(10, label="colour")


def test_aligned_position_keeps_prefix_and_suffix_tokens() -> None:
    old = "The dog saw it."
    new = "The dog will see it."
    old_spans = np.array([[0, 0], [0, 3], [3, 7], [7, 11], [11, 14], [14, 15], [0, 0]])
    new_spans = np.array([[0, 0], [0, 3], [3, 7], [7, 12], [12, 16], [16, 19], [19, 20], [0, 0]])
    assert aligned_position(old, old_spans, 2, new, new_spans) == 2  # "dog": before
    assert aligned_position(old, old_spans, 3, new, new_spans) == 4  # "saw" -> " see"
    assert aligned_position(old, old_spans, 5, new, new_spans) == 6  # ".": after
    assert aligned_position(old, old_spans, 0, new, new_spans) == 0  # [CLS]
    assert aligned_position(old, old_spans, 6, new, new_spans) == 7  # [SEP]


@pytest.fixture(scope="module")
def sentence_tokens():
    lm = sw.models.minilm()
    corpus = sw.datasets.sentences(12, seed=0)
    ds = sw.collect_activations(lm.model, "encoder.layer.2", data=corpus, tokenizer=lm.tokenizer)
    return lm, corpus, ds


def test_probe_attributes_rerender_and_read_the_aligned_token(sentence_tokens) -> None:
    lm, corpus, ds = sentence_tokens
    assert set(ds.attributes) == set(sw.datasets.SENTENCE_ATTRIBUTES)
    np.testing.assert_array_equal(ds.factors["tense"], corpus.factors["tense"][ds.tokens.doc])
    rows = np.flatnonzero(ds.tokens.doc == 0)
    tense = ds.attributes["tense"]
    swept = tense.sweep(rows)  # (3 tenses, tokens of sentence 0, d)
    own = int(corpus.factors["tense"][0])
    np.testing.assert_allclose(swept[own], ds.X[rows], rtol=0, atol=1e-5)
    # the final "." of the future sentence, run alone, is what the "." row reads at value 2
    future = corpus.variants["tense"].render(0, 2)
    alone = sw.collect_activations(
        lm.model, "encoder.layer.2", data=[future], tokenizer=lm.tokenizer
    )
    np.testing.assert_allclose(swept[2][-1], alone.X[-1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(tense.apply(rows[-1:], 2.0)[0], alone.X[-1], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="value index"):
        tense.apply(rows[:1], 1.5)
    sub = ds[rows]  # the attribute follows the subset's rows
    np.testing.assert_allclose(
        sub.attributes["tense"].sweep([len(rows) - 1])[2, 0], alone.X[-1], rtol=0, atol=1e-5
    )
