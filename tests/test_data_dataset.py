"""Dataset and Attribute: validation, indexing, attributes that follow subsets."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import sae_widgets as sw
from sae_widgets.data import Attribute, Dataset


def _shift_attribute(X: np.ndarray) -> Attribute:
    """Adds `value` to every coordinate: easy to predict, identity 0."""
    return Attribute("shift", [-1.0, 1.0], lambda rows, v: X[rows] + v, identity=0.0)


@pytest.fixture
def full() -> Dataset:
    rng = np.random.default_rng(0)
    n, d = 12, 5
    X = rng.normal(size=(n, d))
    codes = sp.random(n, 3, density=0.5, random_state=1, format="csr")
    return Dataset(
        X,
        labels=np.arange(n) % 3,
        label_names=["a", "b", "c"],
        images=rng.uniform(size=(n, 2, 3)),
        factors={"size": np.arange(n, dtype=float), "kind": np.arange(n) % 2},
        true_features=rng.normal(size=(3, d)),
        true_codes=codes,
        attributes={"shift": _shift_attribute(X.astype(np.float32))},
        name="toy",
    )


def test_construction_converts_to_float32_contiguous() -> None:
    X = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(4, 3))
    ds = Dataset(X)
    assert ds.X.dtype == np.float32 and ds.X.flags.c_contiguous
    np.testing.assert_array_equal(ds.X, X)
    assert len(ds) == 4 and ds.n_features == 3
    assert ds.labels is None and ds.images is None and ds.attributes == {}


def test_torch_tensor_is_accepted() -> None:
    X = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    ds = Dataset(X, labels=torch.tensor([0, 1, 1]))
    assert isinstance(ds.X, np.ndarray) and ds.X.dtype == np.float32
    np.testing.assert_array_equal(ds.X, [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(ds.labels, [0, 1, 1])


def test_public_names() -> None:
    assert sw.Dataset is Dataset and sw.Attribute is Attribute


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"X": np.zeros(3)}, ValueError, r"X must be a 2-D array \(n_samples, n_features\); got "),
        ({"X": np.zeros((0, 3))}, ValueError, "X is empty"),
        ({"X": np.array([[1.0, np.nan]])}, ValueError, "X contains NaN or infinite values"),
        ({"X": np.array([[1.0, np.inf]])}, ValueError, "X contains NaN or infinite values"),
        ({"X": np.array([["a"]])}, TypeError, "X must hold numbers"),
        ({"X": np.array([[3.40282357e38]])}, ValueError, "X holds values beyond float32"),
        ({"X": np.zeros((2, 2), dtype=np.complex64)}, TypeError, "X must hold real numbers"),
        ({"X": np.array([[-1e300, 0.0]])}, ValueError, "X holds values beyond float32"),
        (
            {"X": np.zeros((1, 2)), "true_features": np.array([[1e39, 0.0]])},
            ValueError,
            "true_features holds values beyond float32",
        ),
        ({"X": np.zeros((3, 2)), "labels": [0, 1]}, ValueError, r"labels .* per sample \(n=3\)"),
        ({"X": np.zeros((2, 2)), "labels": [0.5, 1j]}, TypeError, "labels must be class"),
        ({"X": np.zeros((2, 2)), "labels": [0, 2], "label_names": ["a"]}, ValueError, "label_"),
        ({"X": np.zeros((2, 2)), "label_names": ["a"]}, ValueError, "without labels"),
        ({"X": np.zeros((2, 4)), "images": np.zeros((3, 2, 2))}, ValueError, "images must"),
        ({"X": np.zeros((2, 4)), "images": np.zeros((2, 2, 2, 2))}, ValueError, "images must"),
        ({"X": np.zeros((2, 2)), "factors": {"f": [1.0]}}, ValueError, r"factors\['f'\]"),
        ({"X": np.zeros((2, 2)), "true_features": np.zeros((4, 3))}, ValueError, "true_features"),
        ({"X": np.zeros((2, 2)), "true_codes": sp.eye(3)}, ValueError, "true_codes"),
        ({"X": np.zeros((2, 2)), "attributes": {"a": 1}}, TypeError, r"attributes\['a'\]"),
        # fuzz report A: scipy's messages, NaN accepted, a 1-D input said "shape (1, 2)"
        ({"X": np.zeros((2, 2)), "true_codes": "abc"}, TypeError, "true_codes must hold real"),
        ({"X": np.zeros((2, 2)), "true_codes": [[1, 2], [3]]}, TypeError, "true_codes must be"),
        (
            {"X": np.zeros((2, 2)), "true_codes": np.zeros((2, 2, 2))},
            ValueError,
            r"true_codes must be 2-D .*; got shape \(2, 2, 2\)",
        ),
        (
            {"X": np.zeros((2, 2)), "true_codes": np.zeros(2)},
            ValueError,
            r"true_codes must be 2-D .*; got shape \(2,\)$",
        ),
        (
            {"X": np.zeros((2, 2)), "true_codes": np.full((2, 3), np.nan)},
            ValueError,
            "true_codes contains NaN or infinite values",
        ),
        (
            {"X": np.zeros((2, 2)), "true_codes": sp.csr_matrix([[np.inf], [0.0]])},
            ValueError,
            "true_codes contains NaN or infinite values",
        ),
        ({"X": np.zeros((2, 2)), "true_codes": 1j * np.eye(2)}, TypeError, "true_codes must hold"),
        ({"X": None}, TypeError, "X must be a 2-D array of numbers .*; got NoneType"),
        ({"X": {"a": 1}}, TypeError, "X must be a 2-D array of numbers .*; got dict"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Dataset(**kwargs)


def test_attribute_bound_to_other_size_is_rejected() -> None:
    attr = Attribute("a", [0.0], lambda rows, v: np.zeros((len(rows), 2)), n_samples=5)
    with pytest.raises(ValueError, match=r"attributes\['a'\] acts on 5 samples"):
        Dataset(np.zeros((3, 2)), attributes={"a": attr})


@pytest.mark.parametrize(
    "index",
    [np.array([7, 2, 2, 11]), slice(3, 10, 2), np.arange(12) % 4 == 1, [0, -1]],
    ids=["int-array", "slice", "mask", "list-with-negative"],
)
def test_indexing_keeps_every_field_aligned(full: Dataset, index: object) -> None:
    rows = np.arange(12)[index]  # what numpy would select
    sub = full[index]
    assert len(sub) == len(rows)
    np.testing.assert_array_equal(sub.X, full.X[rows])
    np.testing.assert_array_equal(sub.labels, full.labels[rows])
    assert sub.label_names == full.label_names
    np.testing.assert_array_equal(sub.images, full.images[rows])
    for key in full.factors:
        np.testing.assert_array_equal(sub.factors[key], full.factors[key][rows])
    np.testing.assert_array_equal(sub.true_features, full.true_features)
    np.testing.assert_array_equal(sub.true_codes.toarray(), full.true_codes.toarray()[rows])
    # the subset's attribute acts on the subset's own rows
    for i, row in enumerate(rows):
        np.testing.assert_allclose(sub.attributes["shift"].apply([i], 0.5), full.X[[row]] + 0.5)


def test_nested_subsets_compose(full: Dataset) -> None:
    sub = full[np.array([9, 4, 6])][np.array([2, 0])]  # rows 6, 9 of the original
    np.testing.assert_array_equal(sub.X, full.X[[6, 9]])
    np.testing.assert_allclose(sub.attributes["shift"].apply([0, 1], -1.0), full.X[[6, 9]] - 1)
    with pytest.raises(ValueError, match="out of range"):
        sub.attributes["shift"].apply([2], 0.0)


def test_single_int_gives_one_sample_and_empty_selection_is_an_error(full: Dataset) -> None:
    one = full[3]
    assert len(one) == 1
    np.testing.assert_array_equal(one.X, full.X[[3]])
    with pytest.raises(ValueError, match="selects no samples"):
        full[np.zeros(12, dtype=bool)]
    with pytest.raises(ValueError, match="index out of range"):
        full[np.array([12])]
    with pytest.raises(ValueError, match="boolean mask must have one entry per sample"):
        full[np.ones(5, dtype=bool)]


def test_repr_lists_size_fields_and_attributes(full: Dataset) -> None:
    text = repr(full)
    for part in ("'toy'", "n=12", "d=5", "classes=3", "image_shape=2x3", "factors=[size, kind]"):
        assert part in text
    assert "attributes=[shift]" in text and "true_features" in text


def test_attribute_grid_contains_identity_and_sweep_matches_apply(full: Dataset) -> None:
    attr = full.attributes["shift"]
    np.testing.assert_array_equal(attr.values, [-1.0, 0.0, 1.0])  # identity 0 was added
    swept = attr.sweep([1, 4])
    assert swept.shape == (3, 2, 5) and swept.dtype == np.float32
    for i, value in enumerate(attr.values):
        np.testing.assert_array_equal(swept[i], attr.apply([1, 4], value))
    custom = attr.sweep([1], values=[0.25, 2.0])
    np.testing.assert_allclose(custom[:, 0], full.X[[1, 1]] + np.array([[0.25], [2.0]]))


def test_attribute_validates_indices_and_values(full: Dataset) -> None:
    attr = full.attributes["shift"]
    with pytest.raises(ValueError, match="indices out of range: 12"):
        attr.apply([12], 0.0)
    with pytest.raises(ValueError, match="value for attribute 'shift' must be a finite number"):
        attr.apply([0], float("nan"))
    with pytest.raises(TypeError, match="value must be a number"):
        attr.apply([0], "big")
    with pytest.raises(TypeError, match="indices must hold integers"):
        attr.apply([0.5], 0.0)
    with pytest.raises(ValueError, match="values contains NaN"):
        attr.sweep([0], values=[0.0, np.inf])
    with pytest.raises(ValueError, match="values must be a non-empty 1-D grid"):
        Attribute("a", [], lambda rows, v: rows)
    unbound = Attribute("a", [0.0], lambda rows, v: np.zeros((len(rows), 1)))
    with pytest.raises(ValueError, match="not bound to a dataset"):
        unbound.apply([0], 0.0)


def test_attribute_map_composes_and_sweeps_in_one_call() -> None:
    X = np.arange(8, dtype=np.float32).reshape(4, 2)
    calls: list[int] = []

    def total(rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        return rows.sum(axis=1, keepdims=True)

    ds = Dataset(X, attributes={"shift": _shift_attribute(X)})
    mapped = ds.attributes["shift"].map(total)
    np.testing.assert_allclose(mapped.apply([2], 1.0), [[X[2].sum() + 2]])
    swept = mapped.sweep([0, 3])
    assert swept.shape == (3, 2, 1)
    np.testing.assert_allclose(swept[:, 1, 0], X[3].sum() + 2 * np.array([-1.0, 0.0, 1.0]))
    assert calls[-1] == 6  # all grid values and samples in one batch
    # mapping survives subsetting: row 0 of the subset is row 3 of the original
    sub_mapped = Dataset(X, attributes={"total": mapped})[np.array([3])].attributes["total"]
    np.testing.assert_allclose(sub_mapped.apply([0], 0.0), [[X[3].sum()]])


def test_attribute_rejects_an_empty_selection_by_name() -> None:
    # the built-in image attributes used to fail deep inside numpy's reshape on no rows
    digits_rotation = sw.datasets.digits().attributes["rotation"]
    for call in (
        lambda: digits_rotation.apply([], 10.0),
        lambda: digits_rotation.sweep(np.zeros(0, dtype=np.int64)),
    ):
        with pytest.raises(ValueError, match="indices must select at least one sample"):
            call()


@pytest.mark.parametrize(
    ("index", "error", "message"),
    [
        (slice(None, None, 0), ValueError, r"index: a slice's step cannot be zero; got slice"),
        (True, TypeError, "index must be an int, slice, index array or boolean mask of length 12"),
        (np.False_, TypeError, "boolean mask of length 12; got np.False_"),
        ([1, True], TypeError, r"index must hold integers or be a boolean mask, not both"),
        ((np.True_, 0), TypeError, "not both"),
    ],
)
def test_indexing_refuses_bools_that_are_not_a_mask(
    full: Dataset, index: object, error: type, message: str
) -> None:
    # fuzz report A: ds[True] was a 1-entry mask, ds[[1, True]] read True as index 1
    with pytest.raises(error, match=message):
        full[index]
    with pytest.raises(TypeError):
        full.attributes["shift"].apply([1, True], 0.0)


def test_single_sample_dataset_still_takes_a_full_mask() -> None:
    one = Dataset(np.ones((1, 2)))
    assert len(one[[True]]) == 1 and len(one[np.array([True])]) == 1
    with pytest.raises(TypeError, match="boolean mask of length 1"):
        one[True]
