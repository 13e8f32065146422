"""Regressions from the fourth fuzzing round: class labels that are names, images with a
channel axis of one, boolean masks for reconstruct, pickled token datasets, one sparse-tensor
check, bytes paths for save/load."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sae_widgets as sw

# --------------------------------------------------------------------- labels that are names

NAMES = st.lists(
    st.text(alphabet="abcdefgh xyz_-", min_size=0, max_size=6), min_size=1, max_size=5, unique=True
)


@settings(max_examples=40, deadline=None)
@given(names=NAMES, data=st.data())
def test_string_labels_become_codes_of_their_sorted_names(names, data) -> None:
    """sw.Dataset(X, labels=["cat", "dog", ...]) raised 'labels must be integers'."""
    n = data.draw(st.integers(1, 30))
    picks = data.draw(st.lists(st.sampled_from(names), min_size=n, max_size=n))
    ds = sw.Dataset(np.zeros((n, 2)), labels=picks)
    expected = sorted(set(picks))
    assert ds.label_names == expected
    assert ds.labels is not None and ds.labels.dtype == np.int64
    assert [ds.label_names[c] for c in ds.labels] == picks
    # the same from a numpy array, an object array and a tuple
    for given_as in (np.array(picks), np.array(picks, dtype=object), tuple(picks)):
        again = sw.Dataset(np.zeros((n, 2)), labels=given_as)
        np.testing.assert_array_equal(again.labels, ds.labels)
        assert again.label_names == expected
    # indexing and pickling keep codes and names
    rows = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n))
    sub = ds[np.array(rows)]
    assert sub.label_names == expected
    assert [sub.label_names[c] for c in sub.labels] == [picks[r] for r in rows]
    copy = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(copy.labels, ds.labels)
    assert copy.label_names == ds.label_names


@settings(max_examples=30, deadline=None)
@given(
    names=NAMES, extra=st.lists(st.text("klmnop", min_size=1, max_size=3), max_size=3, unique=True)
)
def test_given_label_names_fix_the_numbering_of_string_labels(names, extra) -> None:
    order = [*names[::-1], *(e for e in extra if e not in names)]
    picks = [names[i % len(names)] for i in range(7)]
    ds = sw.Dataset(np.zeros((7, 2)), labels=picks, label_names=order)
    assert ds.label_names == order
    assert [order[c] for c in ds.labels] == picks
    with pytest.raises(ValueError, match="label_names must list every class of labels") as err:
        sw.Dataset(np.zeros((7, 2)), labels=picks, label_names=order[1:])
    assert repr(order[0]) in str(err.value)


def test_bool_none_and_fractional_labels() -> None:
    ds = sw.Dataset(np.zeros((3, 2)), labels=[True, False, True])
    assert ds.label_names == ["False", "True"] and ds.labels.tolist() == [1, 0, 1]
    ds = sw.Dataset(np.zeros((3, 2)), labels=np.array([True, False, True]), label_names=["n", "y"])
    assert ds.label_names == ["n", "y"] and ds.labels.tolist() == [1, 0, 1]
    ds = sw.Dataset(np.zeros((3, 2)), labels=torch.tensor([False, False, True]))
    assert ds.labels.tolist() == [0, 0, 1]
    ds = sw.Dataset(np.zeros((4, 2)), labels=["dog", None, "cat", "dog"])  # None: unlabelled
    assert ds.label_names == ["cat", "dog"] and ds.labels.tolist() == [1, -1, 0, 1]
    ds = sw.Dataset(np.zeros((3, 2)), labels=[0.5, 2.5, 0.5])
    assert ds.label_names == ["0.5", "2.5"] and ds.labels.tolist() == [0, 1, 0]
    ds = sw.Dataset(np.zeros((3, 2)), labels=[0.0, 2.0, 1.0])  # integral: class indices
    assert ds.label_names is None and ds.labels.tolist() == [0, 2, 1]
    ds = sw.Dataset(np.zeros((2, 2)), labels=np.array([b"ant", b"bee"]))
    assert ds.label_names == ["ant", "bee"]
    ds = sw.Dataset(np.zeros((2, 2)), labels=[2, None])  # integers with a gap: -1
    assert ds.labels.tolist() == [2, -1] and ds.label_names is None


@pytest.mark.parametrize(
    ("labels", "label_names", "error", "message"),
    [
        (["a", "a", "b"], ["a", "a", "b"], ValueError, "label_names must be distinct"),
        (["a", ["b"], "c"], None, TypeError, "labels"),
        (["a", 3.5, "c"], None, TypeError, "labels"),
        ([1 + 2j, 1j, 0j], None, TypeError, "labels must be class indices .* or class names"),
        ("abc", None, TypeError, "labels must hold one label per sample; got one str"),
        ({"a", "b", "c"}, None, TypeError, "labels must be an ordered sequence"),
        ([True, False, True], ["only"], ValueError, "label_names must name every label"),
    ],
)
def test_labels_that_cannot_be_classes_are_named_in_the_error(
    labels, label_names, error, message
) -> None:
    with pytest.raises(error, match=message):
        sw.Dataset(np.zeros((3, 2)), labels=labels, label_names=label_names)


def test_string_labels_reach_the_summaries_the_table_and_the_colours(digits_sae) -> None:
    sae, digits = digits_sae
    names = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
    ds = sw.Dataset(digits.X, labels=names[digits.labels], images=digits.images)
    assert ds.label_names == sorted(names)
    ex = sw.Explorer(sae, ds)
    summary = ex.unit_summary(0)
    assert summary.label_names == tuple(sorted(names))
    coded = sw.Explorer(sae, sw.Dataset(digits.X, labels=ds.labels, label_names=ds.label_names))
    np.testing.assert_array_equal(summary.label_counts, coded.unit_summary(0).label_counts)
    from sae_widgets.analysis.summary import unit_summary
    from sae_widgets.analysis.unit_stats import unit_stats

    stats = unit_stats(ex.codes, names[digits.labels])  # names given straight to analysis
    np.testing.assert_array_equal(stats.top_label, unit_stats(ex.codes, ds.labels).top_label)
    direct = unit_summary(ex.codes, 0, ex._components(), labels=list(names[digits.labels]))
    assert direct.label_names == tuple(sorted(names))
    from sae_widgets.widgets._point_colors import label_colors

    colours = label_colors(ex, np.arange(20))
    assert colours is not None
    sw.PCABrush(ex)  # coloured by label without an error


def test_string_labels_score_a_classifier_against_the_datasets_names() -> None:
    """Named labels given to metrics.evaluate follow the Dataset's label_names."""
    torch.manual_seed(0)
    X = torch.randn(40, 6)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        classes = model(X).argmax(1).numpy()
    order = ["cherry", "apple", "banana"]  # logit i is order[i]
    ds = sw.Dataset(X.numpy(), labels=[order[c] for c in classes], label_names=order)
    acts = sw.collect_activations(model, layer="1", data=ds)
    sae = sw.SAE(n_units=16, k=4, epochs=1, batch_size=40, seed=0).fit(acts.X, progress=False)
    by_name = sw.metrics.evaluate(sae, ds, model=model, layer="1")
    by_name_given = sw.metrics.evaluate(
        sae, ds, model=model, layer="1", labels=[order[c] for c in classes]
    )
    by_code = sw.metrics.evaluate(sae, ds.X, model=model, layer="1", labels=classes)
    for key, value in by_code.items():
        assert by_name[key] == pytest.approx(value) == by_name_given[key], key
    assert any("loss_recovered" in key for key in by_code)


def test_a_text_corpus_takes_named_labels_too() -> None:
    corpus = sw.TextCorpus(["a b", "c d", "e f"], labels=["pos", "neg", "pos"])
    assert corpus.label_names == ["neg", "pos"] and corpus.labels.tolist() == [1, 0, 1]


# ----------------------------------------------------------------- one sparse-tensor check


def test_the_sparse_tensor_check_lives_in_one_top_level_module() -> None:
    """`data/_arrays._to_numpy` and `sae/inputs.check_dense` each had their own copy."""
    import sae_widgets
    from sae_widgets import tensor_checks
    from sae_widgets.sae import inputs

    assert inputs.check_dense is tensor_checks.check_dense
    package = Path(sae_widgets.__file__).parent
    holders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "!= torch.strided" in path.read_text()
    ]
    assert holders == ["tensor_checks.py"]
    sparse = torch.eye(3).to_sparse()
    message = r"must be a dense tensor; got a sparse one \(layout torch.sparse_coo\)"
    with pytest.raises(TypeError, match="X " + message):
        sw.Dataset(sparse)
    with pytest.raises(TypeError, match="labels " + message):
        sw.Dataset(np.zeros((3, 2)), labels=torch.arange(3).to_sparse())
    with pytest.raises(TypeError, match="X " + message):
        sw.SAE(n_units=4, k=1).fit(sparse)


# ------------------------------------------------------------- images with one channel last


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 6),
    h=st.integers(1, 5),
    w=st.integers(1, 5),
    as_tensor=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_images_with_one_channel_last_are_grey_images(n, h, w, as_tensor, seed) -> None:
    """images of shape (n, h, w, 1) were refused ('must have shape (n, h, w) or (n, h, w, 3)')."""
    rng = np.random.default_rng(seed)
    pixels = rng.random((n, h, w, 1), dtype=np.float32)
    given_images = torch.from_numpy(pixels) if as_tensor else pixels
    ds = sw.Dataset(pixels.reshape(n, -1), images=given_images)
    assert ds.image_shape == (h, w)
    np.testing.assert_array_equal(ds.images, pixels[..., 0])
    np.testing.assert_array_equal(ds[np.arange(n)[::-1]].images, pixels[::-1, ..., 0])


def test_collect_activations_carries_one_channel_images_and_feeds_the_model_images() -> None:
    pixels = np.random.default_rng(0).random((10, 4, 4, 1), dtype=np.float32)
    ds = sw.Dataset(pixels.reshape(10, 16), images=pixels, labels=np.arange(10) % 2)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.ReLU())
    acts = sw.collect_activations(model, layer="1", data=ds, input_shape="images")
    assert acts.image_shape == (4, 4) and acts.X.shape == (10, 2 * 2 * 2)
    np.testing.assert_array_equal(acts.images, pixels[..., 0])
    with torch.no_grad():
        expected = model[1](model[0](torch.from_numpy(pixels).permute(0, 3, 1, 2)))
    np.testing.assert_allclose(acts.X, expected.numpy(), rtol=1e-6, atol=1e-6)
    grid = sw.image_grid(pixels)  # the widget helper takes them too
    assert grid.format == "png"
    with pytest.raises(ValueError, match=r"images must have shape .*got \(10, 4, 4, 2\)"):
        sw.Dataset(pixels.reshape(10, 16), images=np.zeros((10, 4, 4, 2)))


# ------------------------------------------------------- reconstruct indexes as Dataset does


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_reconstruct_takes_what_dataset_indexing_takes(digits_sae, data) -> None:
    """Explorer.reconstruct refused a boolean mask ('must hold integer indices; got dtype
    bool') though ds[mask] takes one; slices and negative indices likewise."""
    sae, ds = digits_sae
    ex = _explorer(sae, ds)
    n = ex.n_samples
    kind = data.draw(st.sampled_from(["mask", "slice", "ints", "one"]))
    if kind == "mask":
        index = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    elif kind == "slice":
        start, stop = data.draw(st.integers(-n, n)), data.draw(st.integers(-n, n))
        step = data.draw(st.integers(-5, 5).filter(bool))
        index = slice(start, stop, step)
    elif kind == "ints":
        index = data.draw(st.lists(st.integers(-n, n - 1), max_size=8))
    else:
        index = data.draw(st.integers(-n, n - 1))
    rows = np.arange(n)[index] if kind != "one" else np.array([index % n])
    rows = np.atleast_1d(rows) % n
    expected = sae.inverse_transform(ex.codes.dense(rows)) if len(rows) else None
    got = ex.reconstruct(index)
    assert got.shape == (len(rows), ds.X.shape[1]) and got.dtype == np.float32
    if expected is not None:
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        if len(rows) and kind != "one":
            assert len(ds[index]) == len(rows)  # the same samples Dataset indexing picks


_EXPLORERS: dict[int, sw.Explorer] = {}


def _explorer(sae, ds) -> sw.Explorer:
    key = id(sae)
    if key not in _EXPLORERS:
        _EXPLORERS[key] = sw.Explorer(sae, ds)
    return _EXPLORERS[key]


def test_reconstruct_names_a_bad_index(digits_sae) -> None:
    sae, ds = digits_sae
    ex = _explorer(sae, ds)
    n = ex.n_samples
    with pytest.raises(ValueError, match=rf"indices as a boolean mask .* \(n={n}\); got 3"):
        ex.reconstruct(np.array([True, False, True]))
    with pytest.raises(ValueError, match=rf"indices out of range: {n} is not a sample index"):
        ex.reconstruct([0, n])
    with pytest.raises(TypeError, match="indices must hold integers or booleans; got dtype"):
        ex.reconstruct([0.5])
    with pytest.raises(TypeError, match="indices must be an int, slice"):
        ex.reconstruct(True)
    with pytest.raises(ValueError, match="step cannot be zero"):
        ex.reconstruct(slice(0, 4, 0))
    mask = np.zeros(n, bool)
    mask[[3, 5]] = True
    np.testing.assert_array_equal(
        ex.reconstruct_prefix(mask, 10), ex.reconstruct_prefix([3, 5], 10)
    )


# ------------------------------------------------------------------ token datasets pickle


@pytest.fixture(scope="module")
def tiny_token_dataset():
    transformers = pytest.importorskip("transformers")
    tokenizer = sw.models.minilm().tokenizer
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    model = transformers.BertModel(config).eval()
    corpus = sw.datasets.sentences(6, seed=0, label="tense")
    ds = sw.collect_activations(model, "encoder.layer.0", data=corpus, tokenizer=tokenizer)
    return corpus, ds


def test_a_token_dataset_pickles_and_its_attributes_still_rerender(tiny_token_dataset) -> None:
    """pickle.dumps of collected token activations raised "Can't pickle local object
    '_variant_attribute.<locals>.sweep_fn'" (and the sentences' render closures)."""
    corpus, ds = tiny_token_dataset
    corpus_copy = pickle.loads(pickle.dumps(corpus))
    assert corpus_copy.variants["tense"].render(0, 2) == corpus.variants["tense"].render(0, 2)
    copy = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(copy.X, ds.X)
    np.testing.assert_array_equal(copy.labels, ds.labels)
    assert copy.label_names == ds.label_names
    np.testing.assert_array_equal(copy.tokens.doc, ds.tokens.doc)
    np.testing.assert_array_equal(copy.tokens.token_id, ds.tokens.token_id)
    assert set(copy.attributes) == set(ds.attributes)
    rows = np.flatnonzero(ds.tokens.doc == 1)
    for name in ("tense", "number"):
        np.testing.assert_allclose(
            copy.attributes[name].sweep(rows), ds.attributes[name].sweep(rows), rtol=0, atol=1e-6
        )
    own = int(corpus.factors["tense"][1])  # at its own value a row reads its own activations
    np.testing.assert_allclose(copy.attributes["tense"].apply(rows, own), ds.X[rows], atol=1e-5)
    sub = pickle.loads(pickle.dumps(ds[rows]))  # a subset's attributes pickle too
    np.testing.assert_allclose(
        sub.attributes["tense"].apply(np.arange(len(rows)), own), ds.X[rows], atol=1e-5
    )


# ------------------------------------------------------------------------- bytes paths


class _BytesPath:
    """An os.PathLike whose __fspath__ gives bytes (as os.DirEntry of a bytes scan does)."""

    def __init__(self, path: bytes) -> None:
        self.path = path

    def __fspath__(self) -> bytes:
        return self.path


@pytest.fixture(scope="module")
def small_sae() -> sw.SAE:
    X = np.random.default_rng(0).random((30, 5), dtype=np.float32)
    return sw.SAE(n_units=6, k=2, epochs=1, batch_size=30, seed=0).fit(X, progress=False)


@settings(max_examples=15, deadline=None)
@given(
    name=st.text(alphabet="abcXYZ_-.é 09", min_size=1, max_size=12).filter(
        lambda s: s not in (".", "..")
    ),
    kind=st.sampled_from(["str", "bytes", "Path", "bytes PathLike"]),
)
def test_save_and_load_take_str_bytes_and_pathlike(small_sae, tmp_path_factory, name, kind) -> None:
    """sae.save(b"runs/x") raised 'folder must be a str or path; got bytes', though open()
    and os.listdir take bytes."""
    folder = tmp_path_factory.mktemp("bytes") / name
    given_path = {
        "str": str(folder),
        "bytes": os.fsencode(folder),
        "Path": folder,
        "bytes PathLike": _BytesPath(os.fsencode(folder)),
    }[kind]
    small_sae.save(given_path)
    assert (folder / "cfg.json").is_file()
    loaded = sw.SAE.load(given_path)
    np.testing.assert_array_equal(loaded.components_, small_sae.components_)


def test_a_path_of_another_kind_is_named(small_sae, tmp_path) -> None:
    with pytest.raises(TypeError, match=r"folder must be a folder path \(str, bytes or os.Path"):
        small_sae.save(3)
    with pytest.raises(TypeError, match=r"folder must be a folder path .* got bytearray"):
        sw.SAE.load(bytearray(b"x"))
    with pytest.raises(ValueError, match="folder must be a path without NUL characters"):
        small_sae.save(b"run\0s")
    ds = sw.Dataset(np.random.default_rng(0).random((30, 5)))
    store = sw.collect_activations(
        torch.nn.Sequential(torch.nn.Identity()), "0", data=ds, out=os.fsencode(tmp_path / "s")
    )
    again = sw.ActivationStore(os.fsencode(tmp_path / "s"))
    np.testing.assert_array_equal(np.asarray(again.X[:]), np.asarray(store.X[:]))
