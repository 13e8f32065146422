"""sae_widgets.metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sae_widgets as sw
from sae_widgets.sae import metrics
from sae_widgets.sae.estimator import SAE


def test_fvu_and_mse_by_hand() -> None:
    X = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 3.0]])
    X_hat = np.array([[1.0, 1.0], [2.0, 0.0], [2.0, 3.0]])
    # mean (2, 1): total = 1+1 + 1+1 + 0+4 = 8; error = 1 + 1 = 2
    assert metrics.fvu(X, X_hat) == pytest.approx(2 / 8)
    assert metrics.mse(X, X_hat) == pytest.approx(2 / 6)
    assert metrics.fvu(torch.tensor(X), torch.tensor(X_hat)) == pytest.approx(0.25)
    assert metrics.fvu(X, X) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        metrics.fvu(X, X_hat[:2])


def test_sparsity_metrics_on_every_array_type() -> None:
    codes = np.array([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 0.0, 3.0], [0.0, 1.0, 0.0, 0.0]])
    for form in (codes, torch.tensor(codes), sp.csr_matrix(codes)):
        assert metrics.l0(form) == pytest.approx(4 / 3)
        np.testing.assert_allclose(metrics.firing_frequencies(form), [0, 2 / 3, 0, 2 / 3])
        assert metrics.dead_fraction(form) == 0.5
    stored_zero = sp.csr_matrix((np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 2])), (1, 2))
    assert metrics.l0(stored_zero) == 1.0  # explicit zeros are not activity


def test_mmcs_mcc_uniqueness_by_hand() -> None:
    true = np.eye(3, 4)
    # units: feature 0 (sign flipped), feature 0 again, feature 1 at 45 degrees
    units = np.array([[-2.0, 0, 0, 0], [1.0, 0, 0, 0], [0, 1.0, 1.0, 0]])
    cos45 = 1 / np.sqrt(2)
    # best per true feature: 1, cos45, cos45 (feature 2's best is the 45-degree unit too)
    assert metrics.mmcs(units, true) == pytest.approx((1 + 2 * cos45) / 3)
    # one-to-one: f0-u0 (1), f1-u2 (cos45), f2-u1 (0)
    assert metrics.mcc(units, true) == pytest.approx((1 + cos45 + 0) / 3)
    # units matching at >= 0.9: u0 and u1, both feature 0 -> one distinct of two
    assert metrics.uniqueness(units, true) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"threshold must be a \|cosine\| in \(0, 1\].*got 1.1"):
        metrics.uniqueness(units, true, threshold=1.1)
    perm = np.random.default_rng(0).permutation(3)
    assert metrics.mmcs(true[perm] * -3, true) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="dimension"):
        metrics.mmcs(units[:, :3], true)


def test_metrics_accept_estimators_and_modules() -> None:
    ds = sw.datasets.superposition(n=512, n_features=20, dim=8, active=2, seed=0)
    sae = SAE(n_units=24, k=2, epochs=1).fit(ds.X, progress=False)
    expected = metrics.mmcs(sae.components_, ds.true_features)
    assert metrics.mmcs(sae, ds.true_features) == pytest.approx(expected)
    assert metrics.mmcs(sae.model_, ds.true_features) == pytest.approx(expected)
    assert metrics.mcc(sae, ds.true_features) <= expected + 1e-12


@pytest.mark.parametrize("activation", ["topk", "relu"])
def test_evaluate_streams_exactly(activation: str) -> None:
    ds = sw.datasets.superposition(n=700, n_features=20, dim=8, active=2, seed=3)
    X = ds.X + 50.0  # a large offset: the streamed variance must not cancel badly
    sae = SAE(n_units=24, activation=activation, k=2, epochs=1).fit(X, progress=False)
    codes = sae.transform(X)
    X_hat = sae.inverse_transform(codes)
    expected = {
        "fvu": metrics.fvu(X, X_hat),
        "mse": metrics.mse(X, X_hat),
        "l0": metrics.l0(codes),
        "dead_fraction": metrics.dead_fraction(codes),
    }
    for chunk_size in (7, 256, 10_000):
        got = metrics.evaluate(sae, X, chunk_size=chunk_size)
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-7), (chunk_size, name)
    assert metrics.evaluate(sae.model_, torch.from_numpy(X))["l0"] == pytest.approx(expected["l0"])
    with pytest.raises(TypeError, match="sae must be"):
        metrics.evaluate("sae", X)


@pytest.mark.parametrize("metric", [metrics.mmcs, metrics.mcc, metrics.uniqueness])
def test_ground_truth_metrics_reject_empty_true_features(metric: object) -> None:
    decoder = np.eye(3)
    with pytest.raises(ValueError, match="true_features"):
        metric(decoder, np.zeros((0, 3)))  # type: ignore[operator]


def test_evaluate_leaves_a_module_in_training_mode() -> None:
    # a hand-written training loop may evaluate between steps; batchtopk's forward depends
    # on the mode, so evaluate must not switch the module to eval behind the user's back
    from sae_widgets.sae.model import SAEConfig, SparseAutoencoder

    X = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    module = SparseAutoencoder(SAEConfig(d_in=6, n_units=12, activation="batchtopk", k=2))
    module.train()
    result = metrics.evaluate(module, X)
    assert module.training
    assert result["l0"] > 0
    module.eval()
    metrics.evaluate(module, X)
    assert not module.training


# ---------------------------------------------------------------- input checks (fuzz report A)


@pytest.fixture(scope="module")
def small_sae() -> SAE:
    X = np.random.default_rng(0).standard_normal((64, 6)).astype(np.float32)
    return SAE(n_units=8, k=2, epochs=1, batch_size=32).fit(X, progress=False)


@pytest.mark.parametrize("metric", [metrics.fvu, metrics.mse])
def test_reconstruction_metrics_refuse_zero_columns(metric: object) -> None:
    # numpy's "zero-size array to reduction operation maximum" escaped
    with pytest.raises(ValueError, match=r"X has no features.*got shape \(3, 0\)"):
        metric(np.zeros((3, 0)), np.zeros((3, 0)))  # type: ignore[operator]


@given(chunk_size=st.sampled_from([np.int64(50), np.int32(7), np.uint8(3), 2**70, 50]))
@settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_evaluate_takes_every_chunk_size_transform_takes(
    small_sae: SAE, chunk_size: object
) -> None:
    X = np.random.default_rng(1).standard_normal((40, 6)).astype(np.float32)
    small_sae.transform(X, chunk_size=chunk_size)
    got = metrics.evaluate(small_sae, X, chunk_size=chunk_size)  # type: ignore[arg-type]
    assert got["fvu"] == pytest.approx(metrics.evaluate(small_sae, X)["fvu"], rel=1e-5)


@pytest.mark.parametrize(
    "chunk_size,error", [(2.0, TypeError), (True, TypeError), ("8", TypeError), (0, ValueError)]
)
def test_evaluate_refuses_chunk_sizes_like_transform(
    small_sae: SAE, chunk_size: object, error: type
) -> None:
    X = np.zeros((4, 6), np.float32)
    with pytest.raises(error, match="chunk_size must be a positive integer"):
        small_sae.transform(X, chunk_size=chunk_size)  # type: ignore[arg-type]
    with pytest.raises(error, match="chunk_size must be a positive integer"):
        metrics.evaluate(small_sae, X, chunk_size=chunk_size)  # type: ignore[arg-type]


def test_ground_truth_metrics_refuse_complex_none_and_zero_features(small_sae: SAE) -> None:
    with pytest.raises(TypeError, match="true_features must hold real numbers; got dtype complex"):
        metrics.mmcs(small_sae, np.ones((3, 6), complex) * (1 + 1j))
    with pytest.raises(TypeError, match="true_features must hold real numbers"):
        metrics.mcc(small_sae, torch.ones(3, 6, dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"true_features must be a 2-D array .*; got NoneType"):
        metrics.mmcs(small_sae, None)
    with pytest.raises(TypeError, match="true_features must be a 2-D array"):
        metrics.mmcs(small_sae, [[1.0, None, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match="true_features must be nonzero directions; row 0"):
        metrics.mmcs(small_sae, np.zeros((3, 6)))  # returned 0.0
    one_zero = np.eye(3, 6)
    one_zero[1] = 0.0
    with pytest.raises(ValueError, match="row 1 is all zeros"):
        metrics.uniqueness(small_sae, one_zero)


def test_sparsity_metrics_refuse_none_and_nan_in_sparse_codes() -> None:
    with pytest.raises(TypeError, match=r"codes must be a 2-D array .*; got NoneType"):
        metrics.l0(None)
    with pytest.raises(TypeError, match="codes must hold real numbers"):
        metrics.l0(np.ones((2, 2), complex))
    for bad in (np.nan, np.inf):
        dense = np.array([[bad, 1.0]])
        # dense codes were refused; sparse ones counted NaN as an active unit
        for form in (dense, sp.csr_matrix(dense), sp.coo_matrix(dense)):
            with pytest.raises(ValueError, match="codes contains NaN or infinite values"):
                metrics.l0(form)
            with pytest.raises(ValueError, match="codes contains NaN or infinite values"):
                metrics.firing_frequencies(form)
