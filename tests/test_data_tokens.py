"""Token activations of a real transformer (all-MiniLM-L6-v2, shipped by the `text` extra).

One model load per module (a few seconds); every forward pass here is a handful of short
sentences.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sae_widgets as sw
from sae_widgets.data import models

LAYER = "encoder.layer.3"
TEXTS = [
    "The cat sat on the mat.",
    "Hello <script>alert(1)</script> world, a much longer sentence than the first one.",
    "Short.",
    "Another sentence of a middling length.",
]


@pytest.fixture(scope="module")
def minilm() -> models.LanguageModel:
    return sw.models.minilm()


def hidden_alone(lm: models.LanguageModel, text: str, layer: int = 3) -> np.ndarray:
    """The layer's hidden states of one document run alone, no padding: (L, d)."""
    encoding = lm.tokenizer([text], return_tensors="pt")
    captured = {}

    def hook(_module, _inputs, output):
        captured["h"] = output[0] if isinstance(output, tuple) else output

    handle = lm.model.encoder.layer[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            lm.model(**encoding)
    finally:
        handle.remove()
    return captured["h"][0].numpy()


def test_loader_returns_an_eval_model_and_a_fast_tokenizer(minilm) -> None:
    model, tokenizer = minilm
    assert not model.training
    assert tokenizer.is_fast
    assert model.config.hidden_size == 384


def test_rows_are_the_non_special_tokens_without_padding(minilm) -> None:
    ds = sw.collect_activations(minilm.model, LAYER, data=TEXTS, tokenizer=minilm.tokenizer)
    lengths = [len(minilm.tokenizer(t)["input_ids"]) for t in TEXTS]  # with [CLS] and [SEP]
    assert ds.X.shape == (sum(n - 2 for n in lengths), 384)
    assert ds.X.dtype == np.float32
    tokens = ds.tokens
    assert isinstance(tokens, sw.TokenRows)
    for doc, n in enumerate(lengths):
        np.testing.assert_array_equal(tokens.pos[tokens.doc == doc], np.arange(1, n - 1))
    special = set(minilm.tokenizer.all_special_ids)  # [PAD], [CLS], [SEP], ...
    assert not special & set(tokens.token_id.tolist())
    assert tokens.texts == TEXTS


def test_each_row_reproduces_its_token_run_alone(minilm) -> None:
    one_at_a_time = sw.collect_activations(
        minilm.model, LAYER, data=TEXTS, tokenizer=minilm.tokenizer, batch_size=1
    )
    batched = sw.collect_activations(
        minilm.model, LAYER, data=TEXTS, tokenizer=minilm.tokenizer, batch_size=3
    )
    np.testing.assert_array_equal(one_at_a_time.tokens.doc, batched.tokens.doc)
    for doc, text in enumerate(TEXTS):
        alone = hidden_alone(minilm, text)
        ids = minilm.tokenizer(text)["input_ids"]
        for ds in (one_at_a_time, batched):
            rows = np.flatnonzero(ds.tokens.doc == doc)
            positions = ds.tokens.pos[rows]
            np.testing.assert_array_equal(ds.tokens.token_id[rows], np.asarray(ids)[positions])
            if ds is one_at_a_time:  # the very same computation: bit for bit
                np.testing.assert_array_equal(ds.X[rows], alone[positions])
            else:  # padded batches change only float rounding (matmul shapes differ)
                np.testing.assert_allclose(ds.X[rows], alone[positions], rtol=0, atol=1e-5)


def test_special_tokens_kept_on_request_and_max_tokens_caps_rows(minilm) -> None:
    kept = sw.collect_activations(
        minilm.model, LAYER, data=TEXTS[:1], tokenizer=minilm.tokenizer, drop_special=False
    )
    ids = minilm.tokenizer(TEXTS[0])["input_ids"]
    np.testing.assert_array_equal(kept.tokens.token_id, ids)  # [CLS] ... [SEP], no padding
    np.testing.assert_array_equal(kept.X, hidden_alone(minilm, TEXTS[0]))

    full = sw.collect_activations(minilm.model, LAYER, data=TEXTS, tokenizer=minilm.tokenizer)
    capped = sw.collect_activations(
        minilm.model, LAYER, data=TEXTS, tokenizer=minilm.tokenizer, max_tokens=10
    )
    assert len(capped) == 10
    np.testing.assert_array_equal(capped.tokens.doc, full.tokens.doc[:10])
    np.testing.assert_array_equal(capped.tokens.pos, full.tokens.pos[:10])
    np.testing.assert_allclose(capped.X, full.X[:10], rtol=0, atol=1e-5)


def test_drop_first_leaves_out_each_documents_first_positions(minilm) -> None:
    full = sw.collect_activations(minilm.model, LAYER, data=TEXTS, tokenizer=minilm.tokenizer)
    later = sw.collect_activations(
        minilm.model, LAYER, data=TEXTS, tokenizer=minilm.tokenizer, drop_first=2
    )
    keep = full.tokens.pos >= 2  # position 0 is [CLS] (special): dropped either way
    np.testing.assert_array_equal(later.tokens.doc, full.tokens.doc[keep])
    np.testing.assert_array_equal(later.tokens.pos, full.tokens.pos[keep])
    np.testing.assert_allclose(later.X, full.X[keep], rtol=0, atol=1e-5)
    with_special = sw.collect_activations(
        minilm.model,
        LAYER,
        data=TEXTS[:1],
        tokenizer=minilm.tokenizer,
        drop_special=False,
        drop_first=1,
    )
    ids = minilm.tokenizer(TEXTS[0])["input_ids"]
    np.testing.assert_array_equal(with_special.tokens.token_id, ids[1:])  # ... [SEP]
    with pytest.raises(ValueError, match="drop_first"):
        sw.collect_activations(
            minilm.model, LAYER, data=["a b"], tokenizer=minilm.tokenizer, drop_first=50
        )


def test_max_length_cuts_long_documents(minilm) -> None:
    ds = sw.collect_activations(
        minilm.model, LAYER, data=TEXTS, tokenizer=minilm.tokenizer, max_length=6
    )
    counts = np.bincount(ds.tokens.doc)
    assert counts.max() == 4  # 6 tokens minus [CLS] and [SEP]


def test_forward_stops_after_the_hooked_layer(minilm) -> None:
    later = []
    handle = minilm.model.encoder.layer[4].register_forward_hook(lambda *a: later.append(1))
    try:
        sw.collect_activations(minilm.model, LAYER, data=TEXTS, tokenizer=minilm.tokenizer)
    finally:
        handle.remove()
    assert later == []
    assert not minilm.model.training


def test_subsets_keep_token_rows_aligned(minilm) -> None:
    ds = sw.collect_activations(minilm.model, LAYER, data=TEXTS, tokenizer=minilm.tokenizer)
    picked = np.array([5, 0, 17])
    sub = ds[picked]
    np.testing.assert_array_equal(sub.X, ds.X[picked])
    np.testing.assert_array_equal(sub.tokens.doc, ds.tokens.doc[picked])
    np.testing.assert_array_equal(sub.tokens.pos, ds.tokens.pos[picked])
    assert sub.tokens.documents is ds.tokens.documents
    assert [sub.tokens.token_text(i) for i in range(3)] == [
        ds.tokens.token_text(int(r)) for r in picked
    ]
    assert "tokens" in repr(ds)


def test_token_text_and_context_come_from_the_original_text(minilm) -> None:
    ds = sw.collect_activations(minilm.model, LAYER, data=TEXTS, tokenizer=minilm.tokenizer)
    tokens = ds.tokens
    # the uncased tokenizer lowercases its pieces; the text shown keeps the original case
    first = tokens.token_text(0)
    assert first == "The"
    pieces, rows, center = tokens.context(int(np.flatnonzero(tokens.doc == 1)[2]), 50, 50)
    assert "".join(pieces) == TEXTS[1]
    assert pieces[center] == "script"
    assert rows[center] == np.flatnonzero(tokens.doc == 1)[2]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"data": "one text"}, TypeError, "wrap it in a list"),
        ({"data": []}, ValueError, "no texts"),
        ({"data": ["ok", 3]}, TypeError, r"data\[1\]"),
        ({"data": {"a text": 1}}, TypeError, "ordered list of texts.*got dict"),  # its keys
        ({"data": {"one", "two"}}, TypeError, "ordered list of texts.*got set"),
        ({"max_tokens": 0}, ValueError, "max_tokens"),
        ({"max_length": 2.5}, TypeError, "max_length"),
        ({"drop_special": "yes"}, TypeError, "drop_special"),
        ({"drop_first": -1}, ValueError, "drop_first"),
        ({"drop_first": 1.5}, TypeError, "drop_first"),
        ({"layer": "pooler"}, ValueError, "one vector per token"),
        ({"tokenizer": "bert"}, TypeError, "tokenizer"),
        ({"device": "gpu0"}, ValueError, "device must name"),
        ({"device": "meta"}, ValueError, "move the model"),
        # a max_length past BERT's 512 positions was a torch RuntimeError from the embedding
        ({"max_length": 100_000}, ValueError, "at most 512, the model's context"),
        # below [CLS] + [SEP] the tokenizer silently skipped truncation
        ({"max_length": 1}, ValueError, "max_length must be >= 3"),
        ({"data": ["ok", "bad \ud800 text"]}, ValueError, r"data\[1\] is not valid Unicode"),
        ({"input_shape": (3,)}, ValueError, "input_shape shapes rows of numbers"),
        ({"input_fn": lambda x: x}, ValueError, "input_fn shapes rows of numbers"),
        ({"out": "never-written", "overwrite": "yes"}, TypeError, "overwrite"),
    ],
)
def test_bad_arguments(minilm, kwargs: dict, error: type, message: str) -> None:
    arguments = {"layer": LAYER, "data": TEXTS, "tokenizer": minilm.tokenizer, **kwargs}
    with pytest.raises(error, match=message):
        sw.collect_activations(minilm.model, **arguments)


def test_very_long_texts_are_cut_at_the_models_context(minilm) -> None:
    ds = sw.collect_activations(
        minilm.model, LAYER, data=["word " * 3000, "short"], tokenizer=minilm.tokenizer
    )
    assert np.bincount(ds.tokens.doc).tolist() == [510, 1]  # 512 minus [CLS] and [SEP]


def test_a_tokenizer_of_another_model_is_named_not_an_index_error(minilm) -> None:
    class WideTokenizer:  # a fast tokenizer whose ids run past MiniLM's 30522 embeddings
        is_fast = True

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __call__(self, texts, **options):
            encoding = self.inner(texts, **options)
            encoding["input_ids"] = [[i + 40_000 for i in ids] for ids in encoding["input_ids"]]
            return encoding

    with pytest.raises(ValueError, match=r"tokenizer: token id 5.* vocabulary of 30522"):
        sw.collect_activations(
            minilm.model, LAYER, data=TEXTS, tokenizer=WideTokenizer(minilm.tokenizer)
        )


def test_a_model_error_is_a_value_error_naming_the_batch(minilm) -> None:
    def boom(*_args):
        raise RuntimeError("shape mismatch inside the model")

    handle = minilm.model.encoder.layer[0].register_forward_hook(boom)
    try:
        with pytest.raises(ValueError, match="model raised RuntimeError on a batch of 4 texts"):
            sw.collect_activations(minilm.model, LAYER, data=TEXTS, tokenizer=minilm.tokenizer)
    finally:
        handle.remove()


def test_vocab_text_names_ids_outside_the_vocabulary(minilm) -> None:
    ds = sw.collect_activations(minilm.model, LAYER, data=TEXTS[:1], tokenizer=minilm.tokenizer)
    assert ds.tokens.vocab_text([101]) == ["[CLS]"]
    for bad in (-1, 30522):  # -1 was an OverflowError from the tokenizer, 30522 decoded to ""
        with pytest.raises(ValueError, match=r"ids\[0\] must be an integer in \[0, 30521\]"):
            ds.tokens.vocab_text([bad])
    with pytest.raises(TypeError, match="ids"):
        ds.tokens.vocab_text(["the"])


def test_missing_extra_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(models, "MINILM_PACKAGE", "sae_widgets_no_such_weights")
    with pytest.raises(ModuleNotFoundError, match=r"sae_widgets\[text\]"):
        sw.models.minilm()
    with pytest.raises(ValueError, match="smollm2"):
        sw.load_language_model("gpt-7")
