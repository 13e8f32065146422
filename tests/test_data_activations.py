"""collect_activations: equals a manual forward pass, restores the model, carries fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import sae_widgets as sw
from sae_widgets.data import Dataset, collect_activations
from sae_widgets.data.activations import ModelError


class MLP(nn.Module):
    def __init__(self, d_in: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, 32), nn.Dropout(0.5), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def small_cnn(channels: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 64, 10),
    )


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return sw.datasets.digits()[np.arange(0, 1797, 6)]  # 300 samples keep the tests fast


def _manual(modules: list[nn.Module], x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        for module in modules:
            x = module(x)
    return x.reshape(x.shape[0], -1).numpy()


def test_mlp_activations_equal_a_manual_forward_pass(digits: Dataset) -> None:
    torch.manual_seed(0)
    model = MLP()
    model.train()
    model.net[3].eval()  # mixed modes must come back exactly as they were
    acts = collect_activations(model, "net.2", digits, batch_size=64)
    assert model.training and model.net[1].training and not model.net[3].training
    assert all(not m._forward_hooks for m in model.modules())
    model.eval()  # dropout off: what collect_activations used
    expected = _manual([model.net[0], model.net[1], model.net[2]], torch.from_numpy(digits.X))
    assert acts.X.shape == (300, 32) and acts.X.dtype == np.float32
    np.testing.assert_allclose(acts.X, expected, atol=1e-6)
    # fields carried over
    np.testing.assert_array_equal(acts.labels, digits.labels)
    assert acts.label_names == digits.label_names
    np.testing.assert_array_equal(acts.images, digits.images)
    assert set(acts.attributes) == set(digits.attributes)


def test_batch_size_does_not_change_the_result(digits: Dataset) -> None:
    torch.manual_seed(1)
    model = MLP()
    a = collect_activations(model, "net.0", digits, batch_size=7).X
    b = collect_activations(model, "net.0", digits, batch_size=1000).X
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_layer_given_as_module_and_data_as_array(digits: Dataset) -> None:
    torch.manual_seed(2)
    model = MLP()
    by_module = collect_activations(model, model.net[2], digits.X)
    by_name = collect_activations(model, "net.2", digits)
    np.testing.assert_array_equal(by_module.X, by_name.X)
    assert by_module.labels is None


def test_cnn_on_images_explicit_and_automatic(digits: Dataset) -> None:
    torch.manual_seed(3)
    model = small_cnn()
    model(torch.randn(16, 1, 8, 8))  # give BatchNorm non-trivial running statistics
    model.train()
    explicit = collect_activations(model, "2", digits, input_shape="images")
    automatic = collect_activations(model, "2", digits)  # flat input fails, images work
    by_tuple = collect_activations(model, "2", digits, input_shape=(1, 8, 8))
    by_fn = collect_activations(model, "2", digits, input_fn=lambda x: x.view(-1, 1, 8, 8))
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    expected = _manual(list(model[:3]), torch.from_numpy(digits.images).unsqueeze(1))
    assert explicit.X.shape == (300, 4 * 64)
    for acts in (explicit, automatic, by_tuple, by_fn):
        np.testing.assert_allclose(acts.X, expected, atol=1e-5)


def test_rgb_images_go_in_channels_first() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(20, 8, 8, 3)).astype(np.float32)
    ds = Dataset(images.reshape(20, -1), images=images)
    torch.manual_seed(4)
    model = small_cnn(channels=3)
    acts = collect_activations(model, "0", ds, input_shape="images")
    expected = _manual([model[0]], torch.from_numpy(images).permute(0, 3, 1, 2))
    np.testing.assert_allclose(acts.X, expected, atol=1e-5)


def test_attributes_act_through_the_model(digits: Dataset) -> None:
    torch.manual_seed(5)
    model = small_cnn().eval()
    acts = collect_activations(model, "2", digits, input_shape="images")
    rows = np.array([0, 17, 299])
    varied_input = digits.attributes["rotation"].apply(rows, 30.0)
    expected = _manual(list(model[:3]), torch.from_numpy(varied_input).reshape(-1, 1, 8, 8))
    np.testing.assert_allclose(acts.attributes["rotation"].apply(rows, 30.0), expected, atol=1e-5)
    # the identity still returns the unchanged activations
    np.testing.assert_allclose(
        acts.attributes["rotation"].apply(rows, 0.0), acts.X[rows], atol=1e-6
    )
    swept = acts.attributes["shift_x"].sweep(rows)
    assert swept.shape == (len(acts.attributes["shift_x"].values), 3, 4 * 64)
    for value, block in zip(acts.attributes["shift_x"].values, swept):
        np.testing.assert_allclose(block, acts.attributes["shift_x"].apply(rows, value), atol=1e-6)
    # and they follow subsets of the activation dataset
    sub = acts[np.array([299, 0])]
    np.testing.assert_allclose(
        sub.attributes["rotation"].apply([0], 30.0), expected[[2]], atol=1e-5
    )


def test_superposition_fields_and_factors_carry_over() -> None:
    ds = sw.datasets.superposition(200, 16, 8, 2.0, seed=0)
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(8, 12), nn.ReLU())
    acts = collect_activations(model, "1", ds)
    assert acts.true_features is None  # those directions live in the input space
    np.testing.assert_array_equal(acts.true_codes.toarray(), ds.true_codes.toarray())
    shapes = sw.datasets.shapes(n=30, size=16, seed=0)
    shape_acts = collect_activations(nn.Sequential(nn.Linear(256, 5)), "0", shapes)
    for key, values in shapes.factors.items():
        np.testing.assert_array_equal(shape_acts.factors[key], values)


def test_forward_stops_at_the_layer(digits: Dataset) -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise AssertionError("layers after the hooked one must not run")

    model = nn.Sequential(nn.Linear(64, 4), Broken())
    acts = collect_activations(model, "0", digits)
    np.testing.assert_allclose(acts.X, _manual([model[0]], torch.from_numpy(digits.X)), atol=1e-6)


def test_hook_removed_and_mode_restored_on_error(digits: Dataset) -> None:
    model = MLP().train()

    def bad_input(x: torch.Tensor) -> torch.Tensor:
        raise KeyError("input_fn failed")

    with pytest.raises(KeyError, match="input_fn failed"):
        collect_activations(model, "net.2", digits, input_fn=bad_input)
    assert all(m.training for m in model.modules())
    assert all(not m._forward_hooks for m in model.modules())


def test_unknown_layer_lists_the_available_names(digits: Dataset) -> None:
    with pytest.raises(ValueError, match=r"layer 'net\.9' not found .* net\.0, net\.1, net\.2"):
        collect_activations(MLP(), "net.9", digits)
    with pytest.raises(ValueError, match="layer is a module that is not part of model"):
        collect_activations(MLP(), nn.Linear(2, 2), digits)
    with pytest.raises(TypeError, match="layer must be a submodule name"):
        collect_activations(MLP(), 3, digits)


def test_unused_layer_and_rejected_input_are_explained(digits: Dataset) -> None:
    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.Linear(64, 3), nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    with pytest.raises(ValueError, match="layer 'unused' was not called"):
        collect_activations(Skips(), "unused", digits)
    flat_only = Dataset(digits.X)  # no images to fall back on
    with pytest.raises(
        ValueError, match=r"model raised RuntimeError on a batch of shape .*input_shape"
    ):
        collect_activations(small_cnn(), "0", flat_only)


def test_a_model_that_raises_is_reported_as_the_models_error(digits: Dataset) -> None:
    # issue 14 item 8: was reported as a shape problem (or escaped raw)
    class Broken(nn.Module):
        def __init__(self, error: Exception) -> None:
            super().__init__()
            self.layer, self.error = nn.Linear(64, 3), error

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise self.error

    for error in (RuntimeError("cuda out of memory"), KeyError("tokens"), ValueError("bad")):
        with pytest.raises(ModelError, match=f"model raised {type(error).__name__}") as caught:
            collect_activations(Broken(error), "layer", digits)
        assert caught.value.__cause__ is error and isinstance(caught.value, ValueError)


def test_nan_activations_name_the_layer(digits: Dataset) -> None:
    # issue 14 item 8: was "X contains NaN" from the Dataset built afterwards
    model = nn.Sequential(nn.Linear(64, 8), nn.ReLU())
    with torch.no_grad():
        model[0].bias[3] = float("nan")
    with pytest.raises(ValueError, match="layer '1' produced NaN or infinite activations"):
        collect_activations(model, "1", digits)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be an int"),
        ({"input_shape": "images", "input_fn": lambda x: x}, ValueError, "either input_shape"),
        ({"input_shape": (3, 3)}, ValueError, r"input_shape \(3, 3\) holds 9 values"),
        ({"input_shape": "pixels"}, ValueError, "input_shape must be None, 'flat', 'images'"),
        ({"device": "gpu0"}, ValueError, "device must name a torch device"),
        ({"device": "meta"}, ValueError, "the model's parameters are on cpu, not meta"),
    ],
)
def test_bad_arguments(digits: Dataset, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        collect_activations(MLP(), "net.0", digits, **kwargs)


def test_model_and_images_requirements() -> None:
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        collect_activations(lambda x: x, "0", np.zeros((2, 2)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_shape='images' needs a dataset with images"):
        collect_activations(nn.Linear(2, 2), "", np.zeros((2, 2)), input_shape="images")


def test_public_name() -> None:
    assert sw.collect_activations is collect_activations
