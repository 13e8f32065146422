"""Fuzz round 5 of the exploration layer: Selection traits set from what a user has at hand
(torch codes' argmax, topk indices, pandas, numpy scalars), odd datasets in every view.
Each test pins a defect a user hit; the fix is in the commit that added it."""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import sae_widgets as sw
from sae_widgets.explore.selection import Selection, SelectionError, SelectionTypeError


@pytest.fixture
def sel() -> Selection:
    return Selection(n_units=8, n_samples=10)


@pytest.mark.parametrize(
    "value",
    [torch.tensor(3), torch.tensor(3, dtype=torch.int32), np.array(3), np.int16(3)],
    ids=repr,
)
def test_a_unit_from_torch_or_numpy_argmax_is_an_index(sel: Selection, value: Any) -> None:
    # ex.selection.unit = sae.transform(X_tensor).sum(0).argmax(): a 0-d tensor was refused
    sel.unit = value
    assert sel.unit == 3 and type(sel.unit) is int
    sel.probe_sample = value
    assert sel.probe_sample == 3 and type(sel.probe_sample) is int


@pytest.mark.parametrize(
    "value",
    [torch.tensor(True), np.array(True), torch.tensor([3]), torch.tensor(2.5), "3"],
    ids=repr,
)
def test_tensors_that_are_not_one_integer_are_still_refused(sel: Selection, value: Any) -> None:
    with pytest.raises(SelectionTypeError, match="unit"):
        sel.unit = value
    assert sel.unit is None


@pytest.mark.parametrize(
    "value",
    [
        torch.tensor([5, 1, 5]),
        torch.topk(torch.arange(10.0), 2).indices.flip(0),
        pd.Series([5, 1]),
        pd.Index([1, 5]),
    ],
    ids=lambda v: type(v).__name__,
)
def test_samples_from_torch_or_pandas(sel: Selection, value: Any) -> None:
    sel.samples = value
    expected = sorted({int(v) for v in value.tolist()})
    assert sel.samples == expected and all(type(v) is int for v in sel.samples)
    assert sel.sample_array.tolist() == expected


def test_samples_never_freeze_or_keep_the_callers_memory(sel: Selection) -> None:
    series = pd.Series(np.array([1, 2, 3]))
    tensor = torch.tensor([1, 2, 3])
    for value in (series, tensor):
        sel.samples = value
        assert not np.may_share_memory(sel.sample_array, np.asarray(value))
    series.iloc[0] = 7  # still writable
    tensor[0] = 7
    assert sel.samples == [1, 2, 3]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (torch.tensor([1.5]), SelectionTypeError),
        (torch.tensor([True, False]), SelectionTypeError),
        (torch.tensor([[1, 2]]), SelectionError),
        (torch.tensor([10]), SelectionError),
        (pd.Series(["a"]), SelectionTypeError),
        ({1, 2}, SelectionTypeError),  # no order: refused as before (pinned in test_explorer)
        ("12", SelectionTypeError),
        (b"12", SelectionTypeError),
        (None, SelectionTypeError),
        (3, SelectionTypeError),
    ],
    ids=repr,
)
def test_bad_samples_of_any_kind_name_the_trait(sel: Selection, value: Any, error: type) -> None:
    sel.samples = [2]
    with pytest.raises(error, match="samples"):
        sel.samples = value
    assert sel.samples == [2]


@pytest.mark.parametrize(
    "value", [np.int64(2), np.uint8(2), torch.tensor(2), torch.tensor(2.0), np.array(2.0)]
)
def test_a_probe_value_of_any_real_scalar_kind_is_a_float(sel: Selection, value: Any) -> None:
    # probe_value = attr.values[i] of an integer grid gave "expected a float, not the int64"
    sel.probe_value = value
    assert sel.probe_value == 2.0 and type(sel.probe_value) is float


@pytest.mark.parametrize("value", [True, np.bool_(False), torch.tensor(True)], ids=repr)
def test_a_bool_is_no_probe_value(sel: Selection, value: Any) -> None:
    # True was taken as 1.0 (and snapped onto the grid), where unit refuses bools
    with pytest.raises(SelectionTypeError, match="probe_value"):
        sel.probe_value = value
    assert sel.probe_value is None


# ---- images: empty pictures, None, float64 beyond float32 -----------------------------------


@pytest.mark.parametrize("shape", [(4, 0, 0), (4, 0, 3), (4, 3, 0), (4, 0, 3, 3)])
def test_a_dataset_refuses_images_of_no_pixels_as_image_grid_does(shape: tuple[int, ...]) -> None:
    # accepted, though image_grid and every view had nothing to draw
    X = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"images must be at least 1 x 1 pixel"):
        sw.Dataset(X, images=np.zeros(shape))
    with pytest.raises(ValueError, match="images"):
        sw.image_grid(np.zeros(shape))


@pytest.mark.parametrize("value", [None, 0.5, np.float64(1.0)], ids=repr)
def test_image_grid_of_no_array_is_a_type_error(value: Any) -> None:
    # None was reported as "images: contains NaN or infinite values"
    with pytest.raises(TypeError, match="images: expected an array of pixel values"):
        sw.image_grid(value)


def test_image_grid_draws_float64_pixels_beyond_float32_as_clipped(recwarn: Any) -> None:
    # 1e300 overflowed float32 (a RuntimeWarning) and was refused as "NaN or infinite"
    huge = sw.image_grid(np.array([[[1e300, -1e300]]]))
    plain = sw.image_grid(np.array([[[1.0, 0.0]]]))
    assert huge.value == plain.value
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


# ---- the heatmap's sample card at every magnitude fit accepts --------------------------------


@pytest.mark.parametrize("scale", [1e20, 1.0, 1e-20])
def test_the_sample_cards_relative_error_is_finite_at_any_scale(scale: float) -> None:
    # at 1e20 the float32 squares overflowed: "relative error nan" and a RuntimeWarning
    X = np.random.default_rng(0).standard_normal((12, 3)).astype(np.float32)
    sae = sw.SAE(n_units=4, k=1, epochs=1, seed=0).fit(X * scale, progress=False)
    ex = sw.Explorer(sae, X * np.float32(scale))
    heatmap = sw.ActivationHeatmap(ex)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ex.selection.probe_sample = 3
    shown = re.search(r"relative error ([0-9.]+)", heatmap.card_title.value)
    assert shown is not None, heatmap.card_title.value
    x = X[3].astype(np.float64) * scale
    x_hat = ex.reconstruct([3])[0].astype(np.float64)
    expected = np.sum((x / scale - x_hat / scale) ** 2) / np.sum((x / scale) ** 2)
    assert float(shown.group(1)) == pytest.approx(expected, abs=1e-3)


def test_the_sample_card_of_a_zero_input_says_no_relative_error() -> None:
    X = np.zeros((4, 3), dtype=np.float32)
    X[1:] = np.random.default_rng(0).random((3, 3))
    sae = sw.SAE(n_units=4, k=1, epochs=1, seed=0).fit(X, progress=False)
    ex = sw.Explorer(sae, X)
    heatmap = sw.ActivationHeatmap(ex)
    ex.selection.probe_sample = 0
    assert "relative error n/a" in heatmap.card_title.value
