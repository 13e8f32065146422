"""Token activations collected straight into an on-disk store keep their token rows and
documents: a reopened store gives back the same rows and the text views work on it."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import sae_widgets as sw
from sae_widgets.data import models
from sae_widgets.data.store import ActivationStore, StoreError, write_store
from sae_widgets.data.tokens import Documents, TokenRows
from sae_widgets.widgets.text import context_label

LAYER = "encoder.layer.2"


@pytest.fixture(scope="module")
def minilm() -> models.LanguageModel:
    return sw.models.minilm()


@pytest.fixture(scope="module")
def corpus() -> sw.datasets.TextCorpus:
    corpus = sw.datasets.sentences(24, seed=0)
    corpus.texts.append("Beware <script>alert('x')</script> & a longer line, émigré ünïcode.")
    for key, value in corpus.factors.items():
        corpus.factors[key] = np.append(value, 0)
    corpus.labels = np.append(corpus.labels, 1)
    return corpus


def collect(lm, corpus, **kwargs):
    return sw.collect_activations(lm.model, LAYER, data=corpus, tokenizer=lm.tokenizer, **kwargs)


def same_tokens(a: TokenRows, b: TokenRows) -> None:
    for name in ("doc", "pos", "token_id"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.texts == b.texts
    for x, y in zip(a.documents.token_ids, b.documents.token_ids, strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a.documents.offsets, b.documents.offsets, strict=True):
        np.testing.assert_array_equal(x, y)
    for row in range(len(a)):
        assert a.context(row, 6, 3)[0] == b.context(row, 6, 3)[0]


def test_streamed_store_equals_the_in_memory_collection(minilm, corpus, tmp_path, monkeypatch):
    from sae_widgets.data import token_activations

    monkeypatch.setattr(token_activations, "_GROUP_ROWS", 40)  # several groups, several shards
    memory = collect(minilm, corpus)
    store = collect(minilm, corpus, out=tmp_path / "acts", shard_size=64)
    assert isinstance(store, ActivationStore) and len(store.shard_rows) > 2
    reopened = sw.ActivationStore(tmp_path / "acts", verify="open")
    for ds in (store, reopened):
        np.testing.assert_array_equal(np.asarray(ds.X), memory.X)
        np.testing.assert_array_equal(ds.labels, memory.labels)
        assert ds.label_names == memory.label_names
        assert set(ds.factors) == set(memory.factors)
        same_tokens(ds.tokens, memory.tokens)
    assert reopened.tokens.tokenizer.is_fast  # saved with the store, loaded offline
    ids = memory.tokens.token_id[:20].tolist()
    assert reopened.tokens.vocab_text(ids) == memory.tokens.vocab_text(ids)
    assert set(store.attributes) == set(memory.attributes)  # live: the model is at hand
    assert reopened.attributes == {}  # templated re-rendering needs the model
    subset = reopened[np.arange(5, 30)]
    same_tokens(subset.tokens, memory.tokens[np.arange(5, 30)])


def test_text_views_work_on_a_reopened_store(minilm, corpus, tmp_path) -> None:
    collect(minilm, corpus, out=tmp_path / "acts")
    store = sw.ActivationStore(tmp_path / "acts")
    sae = sw.SAE(n_units=16, k=3, epochs=5, batch_size=64, seed=0).fit(store, progress=False)
    ex = sw.Explorer(sae, store)
    script = np.flatnonzero(store.tokens.doc == len(store.tokens.texts) - 1)
    label = context_label(store.tokens, int(script[1]))
    assert "⟦" in label
    inspector = sw.UnitInspector(ex, unit=int(np.argmax(ex.codes.dense(script).max(axis=0))))
    assert inspector.top_tokens is not None
    shown = inspector.top_tokens.contexts.value
    assert shown.count('class="sw-context"') == len(inspector.summary.top_samples)
    heatmap = sw.ActivationHeatmap(ex)
    assert all("⟦" in t for t in heatmap.y_axis.tick_labels.values())
    ex.selection.unit = 0
    ex.selection.probe_sample = int(script[2])
    card = re.sub(r"<span[^>]*>|</span>", "", heatmap.card_text.value)
    assert "&lt;script&gt;" in card and "<script>" not in heatmap.card_text.value


def test_documents_are_checksummed_and_required(minilm, corpus, tmp_path) -> None:
    collect(minilm, corpus, out=tmp_path / "acts", max_tokens=60)
    manifest = json.loads((tmp_path / "acts" / "manifest.json").read_text())
    assert {"documents.texts", "documents.token_ids", "documents.offsets"} <= set(manifest["files"])
    assert any(role.startswith("tokenizer/") for role in manifest["files"])
    texts = tmp_path / "acts" / manifest["files"]["documents.texts"]["file"]
    raw = bytearray(texts.read_bytes())
    raw[-3] ^= 0x20  # flip one character of the last text
    texts.write_bytes(bytes(raw))
    store = sw.ActivationStore(tmp_path / "acts")  # lazy: documents are read on first use
    with pytest.raises(StoreError, match="corrupt"):
        _ = store.tokens
    with pytest.raises(StoreError, match="corrupt"):
        sw.ActivationStore(tmp_path / "acts", verify="open")
    texts.unlink()
    with pytest.raises(StoreError, match="missing"):
        sw.ActivationStore(tmp_path / "acts")


def test_a_failed_collection_leaves_no_store(minilm, corpus, tmp_path) -> None:
    def boom(*_args):
        raise RuntimeError("boom")

    handle = minilm.model.encoder.layer[1].register_forward_hook(boom)
    try:
        # the model's error comes back as a ValueError (as for any model), chained
        with pytest.raises(ValueError, match=r"model raised RuntimeError.*boom") as caught:
            collect(minilm, corpus, out=tmp_path / "acts")
        assert isinstance(caught.value.__cause__, RuntimeError)
    finally:
        handle.remove()
    assert list(tmp_path.iterdir()) == []
    assert not minilm.model.encoder.layer[2]._forward_hooks  # the collection hook is gone


def test_a_dataset_with_token_rows_keeps_them_in_a_store(tmp_path) -> None:
    docs = Documents(
        texts=["a b", "c"],
        token_ids=[np.array([5, 6]), np.array([7])],
        offsets=[np.array([[0, 1], [2, 3]]), np.array([[0, 1]])],
        unembedding=np.arange(24, dtype=np.float32).reshape(8, 3),
    )
    rows = TokenRows(doc=[0, 0, 1], pos=[0, 1, 0], token_id=[5, 6, 7], documents=docs)
    ds = sw.Dataset(np.eye(3, dtype=np.float32), tokens=rows)
    write_store(lambda x: x, ds, tmp_path / "tok", shard_size=2)
    store = ActivationStore(tmp_path / "tok")
    same_tokens(store.tokens, rows)
    np.testing.assert_array_equal(store.tokens.documents.unembedding, docs.unembedding)
    assert store.tokens.tokenizer is None and store.tokens.vocab_text([5]) == ["#5"]
    plain = write_store(lambda x: x, sw.Dataset(np.eye(3, dtype=np.float32)), tmp_path / "p")
    assert plain.tokens is None and "documents" not in plain.manifest


def test_collection_into_a_store_refuses_an_existing_folder(minilm, tmp_path) -> None:
    (tmp_path / "acts").mkdir()
    (tmp_path / "acts" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists"):
        sw.collect_activations(
            minilm.model,
            LAYER,
            data=["One text."],
            tokenizer=minilm.tokenizer,
            out=tmp_path / "acts",
        )
    assert (tmp_path / "acts" / "keep.txt").read_text() == "mine"
    assert torch.is_grad_enabled()
