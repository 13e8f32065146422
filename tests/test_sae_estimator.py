"""The SAE estimator's scikit-learn surface: params, clone, NotFittedError, input types,
transform / encode_sparse / inverse_transform agreement, validation errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import sae_widgets as sw
from sae_widgets.sae.estimator import SAE
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder


@pytest.fixture(scope="module")
def ds() -> sw.Dataset:
    return sw.datasets.superposition(n=1024, n_features=40, dim=12, active=3, seed=5)


@pytest.fixture(scope="module")
def fitted(ds: sw.Dataset) -> dict[str, SAE]:
    out = {}
    for activation in ("relu", "topk", "batchtopk", "jumprelu"):
        out[activation] = SAE(n_units=48, activation=activation, k=3, epochs=2).fit(
            ds.X, progress=False
        )
    return out


def test_public_names_resolve() -> None:
    assert sw.SAE is SAE and sw.SparseAutoencoder is SparseAutoencoder
    assert sw.SAEConfig is SAEConfig
    assert callable(sw.metrics.evaluate)
    from sae_widgets.sae import StopTraining, TrainConfig

    assert issubclass(StopTraining, Exception) and TrainConfig().batch_size == 4096


def test_params_and_clone() -> None:
    sae = SAE(n_units=32, activation="batchtopk", k=5, lr=1e-3, seed=7)
    params = sae.get_params()
    assert params["n_units"] == 32 and params["k"] == 5 and params["lr"] == 1e-3
    assert params["epochs"] == 5 and params["batch_size"] == 4096 and params["device"] == "cpu"
    twin = clone(sae)
    assert twin.get_params() == params and twin is not sae
    assert sae.set_params(k=7) is sae and sae.k == 7


def test_clone_of_fitted_is_unfitted(fitted: dict[str, SAE], ds: sw.Dataset) -> None:
    twin = clone(fitted["topk"])
    assert not hasattr(twin, "model_")
    with pytest.raises(NotFittedError):
        twin.transform(ds.X)


def test_not_fitted_errors(ds: sw.Dataset) -> None:
    sae = SAE()
    for call in (
        lambda: sae.transform(ds.X),
        lambda: sae.inverse_transform(np.zeros((2, 256))),
        lambda: sae.encode_sparse(ds.X),
        lambda: sae.components_,
        lambda: sae.score(ds.X),
    ):
        with pytest.raises(NotFittedError):
            call()


def test_fitted_attributes(fitted: dict[str, SAE], ds: sw.Dataset) -> None:
    sae = fitted["topk"]
    assert sae.fit(ds.X, progress=False) is sae
    assert isinstance(sae.model_, SparseAutoencoder)
    assert sae.components_.shape == (48, 12) and sae.components_.dtype == np.float32
    np.testing.assert_array_equal(sae.components_, sae.model_.W_dec.detach().numpy())
    assert sae.n_features_in_ == 12
    assert sae.n_samples_seen_ == 2 * 1024 and sae.n_steps_ == 64
    assert sae.history_[-1]["step"] == sae.n_steps_  # the last step is always logged
    assert 10 <= len(sae.history_) <= 70


def test_numpy_torch_and_dataset_inputs(fitted: dict[str, SAE], ds: sw.Dataset) -> None:
    sae = fitted["topk"]
    Z_np = sae.transform(ds.X)
    assert isinstance(Z_np, np.ndarray) and Z_np.shape == (1024, 48)
    Z_t = sae.transform(torch.from_numpy(ds.X))
    assert torch.is_tensor(Z_t) and Z_t.device == torch.device("cpu")
    np.testing.assert_allclose(Z_t.numpy(), Z_np)
    np.testing.assert_allclose(sae.transform(ds), Z_np)
    np.testing.assert_allclose(sae.transform(ds.X.astype(np.float64)), Z_np, atol=1e-6)
    X_hat_t = sae.inverse_transform(Z_t)
    assert torch.is_tensor(X_hat_t)
    np.testing.assert_allclose(X_hat_t.numpy(), sae.inverse_transform(Z_np), atol=1e-6)


def test_transform_matches_the_module_in_chunks(fitted: dict[str, SAE], ds: sw.Dataset) -> None:
    for sae in fitted.values():
        expected = sae.model_.encode(torch.from_numpy(ds.X)).detach().numpy()
        np.testing.assert_allclose(sae.transform(ds.X, chunk_size=100), expected, atol=1e-6)


def test_inputs_are_scanned_once_per_call(
    fitted: dict[str, SAE], ds: sw.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """transform, encode_sparse and evaluate check X's magnitudes once (a pass over all of
    X: transform and evaluate made two, 23 ms of 65,536 x 256)."""
    from sae_widgets.sae import inputs

    scans: list[str] = []
    check = inputs.check_magnitude
    monkeypatch.setattr(
        inputs,
        "check_magnitude",
        lambda a, name, *limit: (scans.append(name), check(a, name, *limit)),
    )
    sae = fitted["topk"]
    for call in (sae.transform, sae.encode_sparse, lambda X: sw.metrics.evaluate(sae, X)):
        scans.clear()
        call(ds.X)
        assert scans == ["X"]


def test_encode_sparse_equals_dense_codes(fitted: dict[str, SAE], ds: sw.Dataset) -> None:
    for activation, sae in fitted.items():
        csr = sae.encode_sparse(ds.X, chunk_size=300)
        assert sp.isspmatrix_csr(csr) and csr.dtype == np.float32 and csr.shape == (1024, 48)
        dense = sae.transform(ds.X)
        np.testing.assert_allclose(csr.toarray(), dense, atol=1e-6, err_msg=activation)
        assert csr.nnz == int((dense != 0).sum())  # no stored zeros
        assert csr.has_sorted_indices
        check = csr.copy()
        check.sort_indices()
        np.testing.assert_array_equal(check.indices, csr.indices)
        if activation == "topk":
            assert np.diff(csr.indptr).max() <= 3


def test_inverse_transform_of_sparse_codes(fitted: dict[str, SAE], ds: sw.Dataset) -> None:
    sae = fitted["topk"]
    csr = sae.encode_sparse(ds.X)
    np.testing.assert_allclose(
        sae.inverse_transform(csr), sae.inverse_transform(csr.toarray()), atol=1e-5
    )
    with pytest.raises(ValueError, match="Z must have shape"):
        sae.inverse_transform(np.zeros((3, 5)))


def test_score_is_negative_fvu(fitted: dict[str, SAE], ds: sw.Dataset) -> None:
    sae = fitted["topk"]
    X_hat = sae.inverse_transform(sae.transform(ds.X))
    assert sae.score(ds.X) == pytest.approx(-sw.metrics.fvu(ds.X, X_hat), rel=1e-5)
    assert -1 < sae.score(ds.X) < 0


def test_from_module_wraps_without_training(fitted: dict[str, SAE], ds: sw.Dataset) -> None:
    module = fitted["jumprelu"].model_
    wrapped = SAE.from_module(module, epochs=3)
    assert wrapped.model_ is module and wrapped.activation == "jumprelu"
    assert wrapped.epochs == 3 and wrapped.n_units == 48 and wrapped.n_steps_ == 0
    np.testing.assert_allclose(wrapped.transform(ds.X), fitted["jumprelu"].transform(ds.X))
    with pytest.raises(ValueError, match="n_units"):
        SAE.from_module(module, n_units=7)
    with pytest.raises(TypeError, match="SparseAutoencoder"):
        SAE.from_module(torch.nn.Linear(3, 3))


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        (np.full((10, 12), np.nan, dtype=np.float32), ValueError, "NaN or infinite"),
        (np.zeros((10,), dtype=np.float32), ValueError, "2-D"),
        (np.zeros((0, 12), dtype=np.float32), ValueError, "empty"),
        (np.zeros((5, 3), dtype=np.float32), ValueError, "3 features"),
        (sp.csr_matrix(np.zeros((5, 12))), TypeError, "sparse"),
        (np.array([["a"] * 12] * 2), TypeError, "must hold numbers"),
    ],
)
def test_bad_input_is_rejected(fitted: dict[str, SAE], X: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        fitted["topk"].transform(X)


def test_bad_params_are_rejected(ds: sw.Dataset) -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        SAE(activation="sigmoid").fit(ds.X, progress=False)
    with pytest.raises(ValueError, match="n_units must be a positive integer"):
        SAE(n_units=0).fit(ds.X, progress=False)
    with pytest.raises(ValueError, match="k must be"):
        SAE(n_units=8, k=9).fit(ds.X, progress=False)
    with pytest.raises(ValueError, match="lr must be"):
        SAE(lr=-1.0).fit(ds.X, progress=False)
    with pytest.raises(ValueError, match="device"):
        SAE(device="not-a-device").fit(ds.X, progress=False)
    with pytest.raises(TypeError, match="callbacks"):
        SAE(n_units=8, k=2).fit(ds.X, callbacks=[1], progress=False)


def test_refit_on_bad_input_keeps_the_previous_fit(ds: sw.Dataset) -> None:
    sae = SAE(n_units=16, k=2, epochs=1).fit(ds.X, progress=False)
    before = sae.transform(ds.X[:20])
    history = list(sae.history_)
    with pytest.raises(ValueError, match="NaN or infinite"):
        sae.fit(np.full((10, 12), np.nan, dtype=np.float32), progress=False)
    np.testing.assert_array_equal(sae.transform(ds.X[:20]), before)
    assert sae.history_ == history and sae.n_features_in_ == 12


def test_inverse_transform_rejects_non_finite_codes(fitted: dict[str, SAE]) -> None:
    Z = np.zeros((2, 48), dtype=np.float32)
    Z[1, 3] = np.nan
    for codes in (Z, torch.from_numpy(Z), sp.csr_matrix(np.where(np.isnan(Z), np.inf, Z))):
        with pytest.raises(ValueError, match="Z contains NaN or infinite"):
            fitted["topk"].inverse_transform(codes)


def test_torch_input_of_any_real_dtype_matches_numpy(fitted: dict[str, SAE]) -> None:
    # numpy int8/uint8/bool were accepted while the same torch tensors raised a TypeError
    sae = fitted["topk"]
    counts = np.arange(24, dtype=np.uint8).reshape(2, 12)
    for dtype in (torch.uint8, torch.int16, torch.bool, torch.float16, torch.float64):
        tensor = torch.from_numpy(counts).to(dtype)
        expected = sae.transform(tensor.numpy().astype(np.float32))
        np.testing.assert_allclose(sae.transform(tensor).numpy(), expected, atol=1e-6)
    with pytest.raises(TypeError, match="X must hold real numbers"):
        sae.transform(torch.zeros(2, 12, dtype=torch.complex64))


def test_bad_callbacks_leave_no_untrained_model_behind(ds: sw.Dataset) -> None:
    sae = SAE(n_units=8, k=2, epochs=1)
    with pytest.raises(TypeError, match="callbacks"):
        sae.fit(ds.X, callbacks=[1], progress=False)
    with pytest.raises(NotFittedError):
        sae.transform(ds.X)  # used to transform with the random initial weights
    with pytest.raises(TypeError, match="callbacks"):
        sae.partial_fit(ds.X, callbacks=[1])
    with pytest.raises(NotFittedError):
        sae.transform(ds.X)


@pytest.mark.parametrize("peak", [1e20, 1e25])
def test_huge_finite_inputs_train_with_their_scale_folded_in(ds: sw.Dataset, peak: float) -> None:
    # issue 14 item 4: 1e20 raised ZeroDivisionError and left a NaN model "fitted"
    X = ds.X / np.abs(ds.X).max() * peak
    sae = SAE(n_units=16, k=3, epochs=2).fit(X, progress=False)
    codes = sae.transform(X)
    assert np.isfinite(codes).all() and np.isfinite(sae.inverse_transform(codes)).all()
    assert sw.metrics.evaluate(sae, X)["fvu"] < 0.9  # it learned, at that scale


def test_inputs_too_large_for_float32_are_refused_and_keep_the_previous_fit(
    ds: sw.Dataset,
) -> None:
    sae = SAE(n_units=16, k=2, epochs=1).fit(ds.X, progress=False)
    before = sae.transform(ds.X[:20])
    for peak in (1e37, 3e38):
        with pytest.raises(ValueError, match=r"X holds values as large as .*divide X"):
            sae.fit(np.full((40, 12), peak, dtype=np.float32), progress=False)
        with pytest.raises(ValueError, match="X holds values as large as"):
            sae.transform(np.full((4, 12), -peak))  # float64 beyond float32 too
    np.testing.assert_array_equal(sae.transform(ds.X[:20]), before)
    assert sae.n_features_in_ == 12


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.ones((4, 12), dtype=np.complex64), "real numbers"),  # was silently cast to real
        (np.full((4, 12), "1.5"), "must hold numbers.*<U3"),  # was silently parsed
        (np.array([["a"] * 12] * 4, dtype=object), "must hold numbers.*object"),
        (np.ones((4, 12), dtype=object), "must hold numbers.*object"),
        ([[1.0, 2.0], [3.0]], "numpy array, torch tensor or Dataset"),
    ],
)
def test_complex_string_and_object_arrays_are_type_errors_naming_X(
    fitted: dict[str, SAE], X: object, match: str
) -> None:
    # issue 14 item 7
    for method in (fitted["topk"].transform, SAE(n_units=8, k=2).fit):
        with pytest.raises(TypeError, match=match) as caught:
            method(X)
        assert str(caught.value).startswith("X ")


def test_numpy_integers_are_accepted_where_ints_are(fitted: dict[str, SAE], ds: sw.Dataset) -> None:
    sae = fitted["topk"]
    expected = sae.transform(ds.X[:30])
    for chunk in (np.int64(5), np.int32(7), np.uint8(9)):
        got = sae.transform(ds.X[:30], chunk_size=chunk)
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert sae.encode_sparse(ds.X[:30], chunk_size=chunk).shape == (30, 48)
    for bad, error in ((True, TypeError), (2.0, TypeError), ("5", TypeError), (0, ValueError)):
        with pytest.raises(error, match="chunk_size"):
            sae.transform(ds.X[:3], chunk_size=bad)
