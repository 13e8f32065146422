"""Leftovers of round 7: the probe's value on switching attribute, uniqueness's threshold,
the SAE's set_threshold_ / rescale_inputs_ arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import sae_widgets as sw

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


def _fit(X: Any, **options: Any) -> sw.SAE:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny SAE; the test machine's cores are shared
    try:
        settings = {"n_units": 8, "k": 2, "epochs": 2, "batch_size": 32, "seed": 0, **options}
        return sw.SAE(**settings).fit(X, progress=False)
    finally:
        torch.set_num_threads(threads)


# ---- the probe starts at the sample's own value of a newly picked attribute --------------------


@pytest.fixture(scope="module")
def shapes() -> sw.Dataset:
    return sw.datasets.shapes(n=60, size=8, seed=0)


def _own(ds: sw.Dataset, attribute: str, sample: int) -> float:
    grid = ds.attributes[attribute].values
    assert ds.factors is not None
    return float(grid[np.argmin(np.abs(grid - ds.factors[attribute][sample]))])


def test_switching_to_a_categorical_attribute_starts_at_the_samples_own_value(shapes) -> None:
    # the value of the previous attribute was kept when it lay inside the new grid: scale 1.0
    # became shape 1 (whatever the sample's shape), unlike the first display of "shape"
    ds = shapes
    assert ds.factors is not None
    sample = int(np.flatnonzero(ds.factors["shape"] != 1)[0])
    ex = sw.Explorer(_fit(ds.X), ds)
    ex.selection.probe_sample = sample
    probe = sw.ProbeSlider(ex, "scale")
    assert probe.slider.value == _own(ds, "scale", sample)
    probe.slider.value = 1.0  # the user moves the scale to its end: inside shape's [0, 3]
    probe.attribute.value = "shape"  # the user picks another attribute
    own_shape = _own(ds, "shape", sample)
    assert own_shape != 1.0
    assert probe.slider.value == own_shape  # as a fresh ProbeSlider on "shape" shows
    assert probe.slider.value == sw.ProbeSlider(sw.Explorer(ex.sae, ds), "shape").slider.value
    assert ex.selection.probe_value is None  # the probe's default, not scale's 1.0
    probe.slider.value = 3.0
    probe.attribute.value = "scale"  # and back: shape 3 is no scale either
    assert probe.slider.value == _own(ds, "scale", sample)


def test_a_value_given_with_the_new_attribute_in_one_batch_is_kept(shapes) -> None:
    ex = sw.Explorer(_fit(shapes.X), shapes)
    probe = sw.ProbeSlider(ex, "scale")
    probe.slider.value = 0.5
    for attribute, value in (("shape", 2.0), ("x", 0.3)):
        with ex.selection.hold_trait_notifications():
            ex.selection.probe_value = value  # either order
            ex.selection.probe_attribute = attribute
        assert ex.selection.probe_value == pytest.approx(value) == probe.slider.value
    with ex.selection.hold_trait_notifications():
        ex.selection.probe_attribute = "shape"
        ex.selection.probe_value = 3.0
    assert ex.selection.probe_value == 3.0 == probe.slider.value


# ---- uniqueness's threshold is a |cosine| in (0, 1] -------------------------------------------


@pytest.mark.parametrize("threshold", [1.1, 2, -0.5, 0.0, float("inf"), float("nan")])
def test_uniqueness_refuses_a_threshold_no_cosine_can_mean(threshold: float) -> None:
    # 1.1 returned NaN (as if no unit matched); 0 or less counted every unit, dead ones too
    units, true = np.array([[1.0, 0.0], [0.0, 0.0]]), np.eye(2)
    with pytest.raises(ValueError, match=r"threshold must be a \|cosine\| in \(0, 1\].*got"):
        sw.metrics.uniqueness(units, true, threshold=threshold)


@pytest.mark.parametrize("threshold", ["0.9", None, True, np.array([0.9])])
def test_uniqueness_threshold_of_another_type_is_a_type_error(threshold: Any) -> None:
    with pytest.raises(TypeError, match=r"threshold must be a \|cosine\| in \(0, 1\]"):
        sw.metrics.uniqueness(np.eye(2), np.eye(2), threshold=threshold)


def test_uniqueness_takes_any_real_threshold_in_range() -> None:
    units = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 0.0]])  # two units on feature 0, one dead
    for threshold in (np.float32(0.9), np.float64(1e-6), 0.5):
        assert sw.metrics.uniqueness(units, np.eye(2), threshold=threshold) == 0.5
    assert sw.metrics.uniqueness(units, np.eye(2), threshold=np.int64(1)) == 1.0  # unit 0 only
