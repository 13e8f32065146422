"""Fuzz round 5 of the language-model path: texts, tokenizers and prompts earlier rounds did
not try. Each test pins a defect a user hit (the fix is in the commit that added it), but
for one property test: any Unicode text collects, or is refused by name, with its contexts
joining into it.

Most tests run a tiny character-level LM (no weights); those on a real byte-level BPE
tokenizer (SmolLM2's) are marked slow."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import sae_widgets as sw
from sae_widgets.data.tokens import Documents, TokenRows
from sae_widgets.widgets.text import document_html

# ------------------------------------------------------------------ a tiny causal LM

VOCAB, D = 32, 8


class TinyLM(nn.Module):
    """Embedding -> one block -> vocabulary logits; its context is 16 positions."""

    config = type("Config", (), {"max_position_embeddings": 16})()

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D)
        self.block = nn.Sequential(nn.Linear(D, D), nn.ReLU())
        self.head = nn.Linear(D, VOCAB)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def forward(self, input_ids, attention_mask=None):
        return self.head(self.block(self.embed(input_ids)))


class CharTokenizer:
    """One id per character (what the splice and the steering need of a tokenizer)."""

    eos_token_id = None

    def __call__(self, text, truncation=False, max_length=None):
        ids = [ord(c) % VOCAB for c in text]
        return {"input_ids": ids[:max_length] if truncation and max_length else ids}

    def decode(self, ids):
        return "".join(chr(97 + i % 26) for i in ids)


TEXTS = ["the cat sat on the mat", "a dog ran", "sparse codes"]


@pytest.fixture(scope="module")
def tiny() -> tuple[TinyLM, sw.Dataset, sw.SAE]:
    """The LM, a token Dataset of TEXTS (as collect_activations makes one) and an SAE."""
    torch.manual_seed(0)
    lm = TinyLM().eval()
    tok = CharTokenizer()
    ids = [np.asarray(tok(t)["input_ids"], np.int64) for t in TEXTS]
    offsets = [np.stack([np.arange(len(t)), np.arange(1, len(t) + 1)], 1) for t in TEXTS]
    documents = Documents(texts=list(TEXTS), token_ids=ids, offsets=offsets, tokenizer=tok)
    doc = np.concatenate([np.full(len(i), d) for d, i in enumerate(ids)])
    pos = np.concatenate([np.arange(len(i)) for i in ids])
    tokens = TokenRows(doc, pos, np.concatenate(ids), documents)
    with torch.no_grad():
        rows = torch.cat([lm.block(lm.embed(torch.from_numpy(i))) for i in ids]).numpy()
    acts = sw.Dataset(rows, tokens=tokens)
    sae = sw.SAE(n_units=16, k=3, epochs=3, batch_size=16, seed=0).fit(acts, progress=False)
    return lm, acts, sae


# ------------------------------------------------------------------ byte-level BPE offsets

# A byte-level BPE tokenizer (GPT-2, SmolLM2) splits one character into several tokens, each
# given the whole character's span: "😀 hi" as three tokens over (0, 1), then " hi".
EMOJI = "😀 hi"
EMOJI_OFFSETS = np.array([[0, 1], [0, 1], [0, 1], [1, 4]])


def _emoji_rows() -> TokenRows:
    documents = Documents(
        texts=[EMOJI], token_ids=[np.arange(4, dtype=np.int64)], offsets=[EMOJI_OFFSETS]
    )
    return TokenRows(np.zeros(4, np.int64), np.arange(4), np.arange(4), documents)


def test_tokens_sharing_a_character_show_it_once_in_context() -> None:
    # each of the three tokens repeated the emoji: the context read "😀😀😀 hi"
    tokens = _emoji_rows()
    for row in range(4):
        pieces, rows, center = tokens.context(row, 8, 8)
        assert "".join(pieces) == EMOJI
        assert rows[center] == row
        assert pieces[center].strip()  # the row's own token shows its character(s)
    assert [tokens.token_text(r) for r in range(4)] == ["😀", "😀", "😀", "hi"]
    shown = document_html(tokens, 1, np.ones(4, np.float32))
    assert shown.count("😀") == 1


def test_a_token_whose_span_holds_the_next_tokens_character_is_split_at_it() -> None:
    # " ש" over (6, 8) then "ש" over (7, 8): the letter was shown twice
    text = "abc de שלום"
    offsets = np.array([[0, 3], [3, 6], [6, 8], [7, 8], [8, 11]])
    documents = Documents(texts=[text], token_ids=[np.arange(5)], offsets=[offsets])
    tokens = TokenRows(np.zeros(5, np.int64), np.arange(5), np.arange(5), documents)
    for row in range(5):
        pieces, _, center = tokens.context(row, 8, 8)
        assert "".join(pieces) == text
        assert pieces[center].strip()
    assert tokens.token_text(3) == "ש"


@pytest.mark.slow
def test_smollm2_contexts_of_emoji_cjk_and_rtl_join_into_their_texts() -> None:
    model, tokenizer = sw.models.smollm2()
    texts = ["😀👍🏽 e\u0301 שלום مرحبا 你好世界 <b>&amp;</b> end", "plain words"]
    ds = sw.collect_activations(model, "model.layers.1", data=texts, tokenizer=tokenizer)
    tokens = ds.tokens
    for row in range(len(ds)):
        pieces, rows, center = tokens.context(row, 64, 64)
        assert "".join(pieces) == texts[int(tokens.doc[row])]
        assert rows[center] == row and pieces[center]  # a space token shows its space
    shown = document_html(tokens, 0, np.ones(len(ds), np.float32))
    assert shown.count("😀") == 1 and shown.count("界") == 1
    assert "<b>" not in shown  # escaped: what the page shows is the text itself
    assert html.unescape(re.sub(r"<[^>]*>", "", shown)) == texts[0]


@pytest.fixture(scope="module")
def minilm() -> sw.models.LanguageModel:
    return sw.models.minilm()


_ODD_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("ab <>&\"' \n\t\x00\u0301\u200b😀👍🏽שלוםمرحبا你好世界")),
        st.characters(exclude_categories=("Cs",)),  # no lone surrogates (refused, named)
    ),
    max_size=24,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(_ODD_TEXT, min_size=1, max_size=3))
def test_any_unicode_text_collects_or_is_refused_and_contexts_join(minilm, texts) -> None:
    try:
        ds = sw.collect_activations(
            minilm.model, "embeddings", data=texts, tokenizer=minilm.tokenizer
        )
    except ValueError as err:  # every text empty after the tokenizer's cleaning
        assert "no tokens left to collect" in str(err)
        return
    tokens = ds.tokens
    assert np.isfinite(ds.X).all()
    for row in range(len(ds)):
        pieces, rows, center = tokens.context(row, 64, 64)
        doc = int(tokens.doc[row])
        spans = tokens.documents.offsets[doc]
        real = spans[spans[:, 1] > spans[:, 0]]
        covered = texts[doc][real[0, 0] : real[-1, 1]]  # from the first token to the last
        assert "".join(pieces).strip() == covered.strip()
        assert rows[center] == row and pieces[center]


# ------------------------------------------------------------------ spliced figures


def test_a_subset_of_a_token_dataset_is_scored_on_its_own_documents(tiny) -> None:
    # ds[held_out] was scored on every document of the collection: the same figures as ds
    lm, acts, sae = tiny
    options = {"model": lm, "layer": "block", "batch_size": 2}
    second = np.flatnonzero(acts.tokens.doc == 1)
    from_subset = sw.metrics.evaluate(sae, acts[second], **options)
    alone = sw.metrics.evaluate(sae, [TEXTS[1]], tokenizer=CharTokenizer(), **options)
    assert from_subset == pytest.approx(alone, rel=1e-6)
    both = np.flatnonzero(acts.tokens.doc != 1)[::-1]  # any order: documents in their order
    from_both = sw.metrics.evaluate(sae, acts[both], **options)
    texts = [TEXTS[0], TEXTS[2]]
    assert from_both == pytest.approx(
        sw.metrics.evaluate(sae, texts, tokenizer=CharTokenizer(), **options), rel=1e-6
    )
    whole = sw.metrics.evaluate(sae, acts, **options)
    assert whole == pytest.approx(
        sw.metrics.evaluate(sae, TEXTS, tokenizer=CharTokenizer(), **options), rel=1e-6
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda texts: (t for t in texts),  # "got generator, read as a classifier's inputs"
        lambda texts: pd.Series(texts, index=[7, 3, 5]),  # as for a Series
        lambda texts: np.array(texts),  # and a numpy array of str
        lambda texts: np.array(texts, dtype=object),
        tuple,
    ],
    ids=["generator", "series", "numpy-str", "numpy-object", "tuple"],
)
def test_texts_are_scored_in_any_form_collect_activations_takes(tiny, make) -> None:
    lm, _acts, sae = tiny
    options = {"model": lm, "layer": "block", "tokenizer": CharTokenizer(), "batch_size": 2}
    expected = sw.metrics.evaluate(sae, list(TEXTS), **options)
    assert sw.metrics.evaluate(sae, make(list(TEXTS)), **options) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        # "got list, read as a classifier's inputs": the missing text was not named
        (["a text", None], TypeError, r"data\[1\] must be a str; got NoneType"),
        (pd.Series(["a text", None]), TypeError, r"data\[1\] must be a str; got .*missing text"),
        (["a text", b"bytes"], TypeError, r"data\[1\] must be a str; got bytes"),
        (np.array([["ab", "cd"]]), TypeError, r"data must be a 1-D list of texts.*\(1, 2\)"),
        (b"one text", TypeError, "data must be a list of texts; got bytes"),
    ],
)
def test_texts_with_something_else_among_them_are_named(tiny, data, error, message) -> None:
    lm, _acts, sae = tiny
    with pytest.raises(error, match=message):
        sw.metrics.evaluate(sae, data, model=lm, layer="block", tokenizer=CharTokenizer())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"one text", "data must be a list of texts; got bytes"),  # "data[0] ... got int"
        (bytearray(b"text"), "data must be a list of texts; got bytearray"),
        (np.array([["ab", "cd"]]), r"data must be a 1-D list of texts.*\(1, 2\)"),
    ],
)
def test_collect_activations_names_bytes_and_tables_of_texts(data, message) -> None:
    class FastTokenizer:  # refused before any tokenizing
        is_fast = True

        def __call__(self, *args, **kwargs):
            raise AssertionError("not reached")

        def convert_ids_to_tokens(self, ids):
            raise AssertionError("not reached")

    with pytest.raises(TypeError, match=message):
        sw.collect_activations(TinyLM(), "block", data=data, tokenizer=FastTokenizer())


# ------------------------------------------------------------------ steering


def test_a_prompt_past_the_models_context_is_refused_naming_its_length(tiny) -> None:
    # SmolLM2 ran a 8,200-word prompt for a minute and a half past its 8,192 positions (a
    # transformers warning, then garbage); a model with position embeddings raises inside
    lm, acts, sae = tiny
    ex = sw.Explorer(sae, acts, model=lm, layer="block", tokenizer=CharTokenizer())
    with pytest.raises(ValueError, match=r"prompt is 20 tokens.*3 new ones.*context of 16"):
        ex.steerer.continuation(0, 1.0, "x" * 20, max_new_tokens=3)
    with pytest.raises(ValueError, match=r"prompt is 14 tokens"):
        ex.steerer.continuation(0, 1.0, "x" * 14, max_new_tokens=3)
    assert len(ex.steerer.continuation(0, 1.0, "x" * 13, max_new_tokens=3)) == 3
    view = sw.SteeringView(ex, prompt="y" * 40, max_new_tokens=3)
    ex.selection.unit = 0  # drawn: the failure is the view's status line, not raised
    assert "prompt is 40 tokens" in view.error.value
    default = sw.SteeringView(ex, prompt="y")  # 20 new tokens would not fit in 16 positions
    assert default.max_new_tokens == 8
    ex.selection.unit = 1
    assert default.error.value == ""
    assert len(ex.steerer.continuation(1, 0.0, "y", max_new_tokens=8)) == 8
