"""Regressions from the third fuzzing round of the public API: inputs of other magnitudes,
layouts and kinds than the earlier rounds tried."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import sae_widgets as sw
from sae_widgets.analysis.projection import pca_projection

# ----------------------------------------------------------------- projection of any magnitude


@settings(max_examples=40, deadline=None)
@given(
    exponent=st.integers(-60, 99),
    as_sparse=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_projection_scales_with_the_data_at_any_magnitude(
    exponent: int, as_sparse: bool, seed: int
) -> None:
    """PCA is scale-equivariant: data x 2**e projects to coords x 2**e (no overflow of
    float32 squares past 1e19, no ArpackError, no underflow to 'no variance')."""
    rng = np.random.default_rng(seed)
    Z = rng.random((40, 6), dtype=np.float32)
    Z[Z < 0.5] = 0
    Z[:, 0] *= 4
    scale = np.float32(2.0**exponent)
    base = pca_projection(sp.csr_matrix(Z) if as_sparse else Z, 2, seed=0)
    scaled_input = Z * scale
    scaled = pca_projection(sp.csr_matrix(scaled_input) if as_sparse else scaled_input, 2, seed=0)
    assert np.isfinite(scaled.coords).all() and scaled.coords.dtype == np.float32
    for j in range(2):  # the same axes, up to sign
        expected = base.coords[:, j].astype(np.float64) * float(scale)
        sign = np.sign(scaled.coords[:, j].astype(np.float64) @ expected) or 1.0
        np.testing.assert_allclose(
            sign * scaled.coords[:, j], expected, rtol=1e-3, atol=1e-3 * float(scale)
        )
    np.testing.assert_allclose(scaled.explained_variance_ratio, base.explained_variance_ratio, 1e-4)
    np.testing.assert_allclose(
        scaled.mean.astype(np.float64), base.mean.astype(np.float64) * float(scale), rtol=1e-5
    )


@pytest.mark.parametrize("magnitude", [1e20, 1e25, 5e29])
def test_explorer_views_of_huge_inputs_are_finite(magnitude: float) -> None:
    """Rows as large as fit accepts (|x| <= 1e30): the PCA views were an ArpackError (codes)
    and an overflow warning with infinite coordinates (inputs)."""
    X = np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32)
    X = X / np.abs(X).max() * np.float32(magnitude)
    ds = sw.Dataset(X)
    sae = sw.SAE(n_units=8, k=2, epochs=1, batch_size=16, seed=0).fit(ds, progress=False)
    ex = sw.Explorer(sae, ds)
    for source in ("codes", "inputs"):
        assert np.isfinite(ex.projection(source).coords).all()
    sw.PCABrush(ex)


# ----------------------------------------------------------------- torch sparse tensors

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def fitted() -> sw.SAE:
    X = np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32)
    return sw.SAE(n_units=8, k=2, epochs=1, batch_size=16, seed=0).fit(X, progress=False)


_SPARSE_LAYOUTS = ["to_sparse", "to_sparse_csr"]


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layout", _SPARSE_LAYOUTS)
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda sae, T: sae.transform(T), "X"),
        (lambda sae, T: sae.encode_sparse(T), "X"),
        (lambda sae, T: sw.SAE(n_units=4, k=1, epochs=1).fit(T, progress=False), "X"),
        (lambda sae, T: sae.partial_fit(T), "X"),
        (lambda sae, T: sw.metrics.evaluate(sae, T), "X"),
        (lambda sae, T: sw.metrics.mmcs(sae, T), "true_features"),
        (lambda sae, T: sw.Dataset(T), "X"),
        (lambda sae, T: sw.Dataset(T.to_dense(), labels=torch.arange(6).to_sparse()), "labels"),
    ],
)
def test_a_sparse_tensor_is_a_type_error_naming_the_argument(
    fitted: sw.SAE, layout: str, call, name: str
) -> None:
    """Was torch's NotImplementedError ("Could not run 'aten::aminmax' with arguments from the
    'SparseCPU' backend") or its TypeError naming no argument."""
    T = getattr(torch.tensor(np.eye(6, dtype=np.float32)), layout)()
    with pytest.raises(TypeError, match=rf"^{name} must be a dense tensor.*to_dense"):
        call(fitted, T)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layout", _SPARSE_LAYOUTS)
def test_inverse_transform_takes_sparse_torch_codes_as_it_takes_scipy_ones(
    fitted: sw.SAE, layout: str
) -> None:
    X = torch.tensor(np.random.default_rng(1).normal(size=(5, 6)).astype(np.float32))
    Z = fitted.transform(X)
    dense = fitted.inverse_transform(Z)
    sparse = fitted.inverse_transform(getattr(Z, layout)())
    assert torch.is_tensor(sparse) and sparse.layout == torch.strided
    torch.testing.assert_close(sparse, dense)
    np.testing.assert_allclose(
        fitted.inverse_transform(sp.csr_matrix(Z.numpy())), dense.numpy(), rtol=1e-5, atol=1e-6
    )


# ----------------------------------------------------------------- collect_activations


class _DictLayer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(6, 5)

    def forward(self, x):
        return {"out": self.linear(x), "aux": 1}


class _DictModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = _DictLayer()
        self.head = torch.nn.Linear(5, 2)

    def forward(self, x):
        return self.head(self.block(x)["out"])


@pytest.mark.parametrize("with_images", [False, True])
def test_a_layer_returning_a_dict_is_named_not_reported_as_the_models_error(
    with_images: bool,
) -> None:
    """The hook's own TypeError was wrapped as 'model raised TypeError on a batch of shape
    ...' with advice about input shapes (and, with images, retried on image batches)."""
    X = np.random.default_rng(0).normal(size=(12, 6)).astype(np.float32)
    ds = sw.Dataset(X, images=X.reshape(12, 2, 3) if with_images else None)
    expected = r"layer 'block' returned a dict \(keys 'out', 'aux'\)"
    with pytest.raises(TypeError, match=expected) as e:
        sw.collect_activations(_DictModel(), layer="block", data=ds)
    assert "input_shape" not in str(e.value) and "model raised" not in str(e.value)
    assert e.value.__cause__ is None  # the hook's error itself, not a wrapper


def test_the_empty_layer_name_is_the_model_output_named_like_layer_model() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(6, 3))
    ds = sw.Dataset(np.eye(6, dtype=np.float32))
    by_name = sw.collect_activations(model, layer="", data=ds)
    by_module = sw.collect_activations(model, layer=model, data=ds)
    np.testing.assert_array_equal(by_name.X, by_module.X)
    assert by_name.name == by_module.name and by_name.name.endswith("Sequential")


# ----------------------------------------------------------------- mmcs at any magnitude


@settings(max_examples=40, deadline=None)
@given(exponent=st.integers(-300, 300), seed=st.integers(0, 2**16))
def test_cosine_metrics_do_not_depend_on_the_scale_of_true_features(
    exponent: int, seed: int
) -> None:
    """float64 true features of 1e300 scored 0 (their norms overflowed to inf) and of 1e-300
    were refused as 'all zeros' (their squares underflowed)."""
    rng = np.random.default_rng(seed)
    decoder = rng.normal(size=(5, 4))
    true = rng.normal(size=(3, 4))
    scaled = true * 10.0**exponent
    for metric in (sw.metrics.mmcs, sw.metrics.mcc):
        assert metric(decoder, scaled) == pytest.approx(metric(decoder, true), rel=1e-9)
        assert metric(decoder * 10.0**-exponent, true) == pytest.approx(
            metric(decoder, true), rel=1e-9
        )


# ----------------------------------------------------------------- pickling datasets


def _digits_activations() -> sw.Dataset:
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    return sw.collect_activations(conv, layer="0", data=sw.datasets.digits()[:12])


@pytest.mark.parametrize(
    "make",
    [
        lambda: sw.datasets.digits()[:12],
        lambda: sw.datasets.digits()[5:9],
        lambda: sw.datasets.shapes(n=8, size=8, seed=0),
        lambda: sw.datasets.superposition(n=8, n_features=4, dim=3, active=1.0, seed=0),
        _digits_activations,
        lambda: _digits_activations()[2:6],
    ],
    ids=["digits", "digits-subset", "shapes", "superposition", "activations", "act-subset"],
)
def test_a_dataset_pickles_with_working_attributes(make) -> None:
    """pickle.dumps(sw.datasets.digits()) raised "Can't pickle local object
    'image_attribute.<locals>.apply_fn'" (attributes were closures)."""
    import pickle

    ds = make()
    copy = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(copy.X, ds.X)
    assert list(copy.attributes) == list(ds.attributes)
    for name, attribute in ds.attributes.items():
        value = float(attribute.values[-1])
        np.testing.assert_array_equal(
            copy.attributes[name].apply([0, 1], value), attribute.apply([0, 1], value)
        )
        np.testing.assert_array_equal(copy.attributes[name].sweep([1, 0]), attribute.sweep([1, 0]))


# ----------------------------------------------------------------- one-pass parameters


@pytest.mark.parametrize("make", [lambda: (s for s in (4, 8)), lambda: iter([4, 8])])
def test_prefix_sizes_that_read_only_once_are_refused_up_front(make) -> None:
    """A generator trained once, then the refit said 'prefix_sizes must be strictly
    increasing integers ending at n_units=8, got ()' and clone / pickle raised
    "cannot pickle 'generator' object"."""
    from sklearn.base import clone

    kw = dict(n_units=8, k=2, epochs=1, activation="matryoshka_batchtopk")
    with pytest.raises(TypeError, match=r"^prefix_sizes must be .*tuple\(\.\.\.\)"):
        sw.SAE(**kw, prefix_sizes=make()).fit(np.eye(8, dtype=np.float32), progress=False)
    with pytest.raises(TypeError, match=r"^prefix_sizes must be"):
        sw.SAE(**kw).set_params(prefix_sizes=make())
    fitted = sw.SAE(**kw, prefix_sizes=range(4, 9, 4)).fit(np.eye(8, dtype=np.float32))
    assert fitted.prefix_sizes_ == (4, 8)
    assert clone(fitted).fit(np.eye(8, dtype=np.float32)).prefix_sizes_ == (4, 8)
