"""Leftovers of round 7: the probe's value on switching attribute, uniqueness's threshold,
the SAE's set_threshold_ / rescale_inputs_ arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from tiny_fits import fit_tiny

import sae_widgets as sw

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:bqscales.*")


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
    ex = sw.Explorer(fit_tiny(ds.X), ds)
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
    ex = sw.Explorer(fit_tiny(shapes.X), shapes)
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


# ---- set_threshold_ / rescale_inputs_ check their argument once -------------------------------


def _module(activation: str) -> Any:
    from sae_widgets.sae.model import SAEConfig, SparseAutoencoder

    k = {"k": 2} if "topk" in activation else {}
    return SparseAutoencoder(SAEConfig(d_in=4, n_units=3, activation=activation, **k))


_BAD_THRESHOLDS = [
    (float("nan"), "got nan"),
    (float("inf"), "got inf"),
    (-1.0, "got -1"),
    (np.float32(-0.5), "got -0.5"),
    (torch.tensor(float("-inf")), "got -inf"),
    (torch.tensor([0.5, float("nan"), 1.0]), "got nan for unit 1"),
    (np.array([0.5, 1.0, -2.0]), "got -2 for unit 2"),
]


@pytest.mark.parametrize("activation", ["jumprelu", "batchtopk"])
@pytest.mark.parametrize(("threshold", "said"), _BAD_THRESHOLDS)
def test_set_threshold_refuses_nan_inf_and_negative(activation: str, threshold, said) -> None:
    # NaN and inf were stored (every code NaN or 0); a learned threshold's -1 became 1e-30
    # silently, a running one's was kept although it acts as 0
    model = _module(activation)
    before = model.threshold.detach().clone()
    with pytest.raises(ValueError, match=rf"threshold must be finite and at least 0.*{said}$"):
        model.set_threshold_(threshold)
    assert torch.equal(model.threshold.detach(), before)  # unchanged


@pytest.mark.parametrize("threshold", ["a", None, True, torch.tensor([True, False, True])])
def test_set_threshold_of_another_type_is_a_type_error(threshold) -> None:
    # "a" and None raised torch's "can't convert np.ndarray of type numpy.str_"; True was 1.0
    with pytest.raises(TypeError, match="threshold"):
        _module("jumprelu").set_threshold_(threshold)


@pytest.mark.parametrize("activation", ["jumprelu", "batchtopk"])
def test_set_threshold_takes_zero_and_numbers_of_any_kind(activation: str) -> None:
    model = _module(activation)
    for given in (0, 0.25, np.float32(0.5), np.int64(2), torch.tensor(1.5), [0.0, 1.0, 2.0]):
        model.set_threshold_(given)
        expected = torch.tensor(np.broadcast_to(np.asarray(given, np.float32), (3,)).copy())
        torch.testing.assert_close(model.threshold.detach(), expected, atol=1e-30, rtol=1e-6)


@pytest.mark.parametrize("factor", [float("nan"), float("inf"), 0.0, -2.0, torch.tensor(0.0)])
def test_rescale_inputs_refuses_a_factor_that_is_not_finite_and_positive(factor) -> None:
    # NaN / inf made every bias and threshold NaN; 0 zeroed them; -2 flipped the biases while
    # a learned threshold became NaN
    model = _module("jumprelu")
    before = {name: value.detach().clone() for name, value in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"factor must be a finite number above 0; got"):
        model.rescale_inputs_(factor)
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


@pytest.mark.parametrize("factor", ["2", None, True])
def test_rescale_inputs_of_another_type_is_a_type_error(factor) -> None:
    with pytest.raises(TypeError, match="factor must be a number above 0"):
        _module("batchtopk").rescale_inputs_(factor)


def test_rescale_inputs_takes_numpy_and_tensor_numbers() -> None:
    model = _module("jumprelu")
    model.set_threshold_(1.0)
    for factor in (np.float32(2.0), torch.tensor(2.0), 2):
        model.rescale_inputs_(factor)
    torch.testing.assert_close(model.threshold.detach(), torch.full((3,), 8.0))


def test_from_weights_loads_a_files_negative_threshold_as_zero() -> None:
    # the file's own framework gates with a ReLU too: below 0 acts as 0, the same codes
    from sae_widgets.sae.model import SAEConfig, SparseAutoencoder

    cfg = SAEConfig(d_in=2, n_units=2, activation="jumprelu")
    eye = np.eye(2, dtype=np.float32)
    model = SparseAutoencoder.from_weights(
        cfg, eye, np.zeros(2), eye, np.zeros(2), threshold=np.array([-0.5, 0.5])
    )
    assert model.threshold is not None
    assert model.threshold.detach().tolist() == pytest.approx([0.0, 0.5], abs=1e-29)


# ---- one input feature: the decoder / encoder bars get a blank second category ---------------


def test_the_bars_of_one_input_feature_have_a_blank_second_category() -> None:
    """Two Bars marks on a one-category axis froze the browser tab (d = 1); the real-browser
    check is tests/browser/test_one_feature.py."""
    from sae_widgets.widgets._panels import BarPair

    pair = BarPair(("decoder", "encoder"))
    pair.show(np.array([-1.0]), np.array([0.5]), [0])
    for bars, value in zip(pair.pair, (-1.0, 0.5)):
        assert list(bars.x) == ["0", " "]
        np.testing.assert_array_equal(bars.y, np.array([value, 0.0], np.float32))
    pair.show(np.array([3.0, -2.0, 1.0]), np.array([1.0, 2.0, 3.0]), [1, 0])
    assert list(pair.pair[0].x) == ["1", "0"]
    np.testing.assert_array_equal(pair.pair[0].y, np.array([-2.0, 3.0], np.float32))
