"""pca_projection against a dense SVD of the centred data."""

import numpy as np
import pytest
import scipy.sparse as sp

from sae_widgets.analysis.projection import pca_projection


def sparse_codes(n=500, n_units=40, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.random((n, n_units), dtype=np.float32)
    Z[Z < 0.8] = 0
    Z[:, :3] *= 4  # a few high-variance units give a clear leading subspace
    return Z


def dense_pca(X, n_components):
    centred = X.astype(np.float64) - X.mean(0, dtype=np.float64)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    ratio = s**2 / (s**2).sum()
    return centred @ vt[:n_components].T, ratio[:n_components], vt[:n_components]


def assert_same_up_to_sign(coords, expected):
    for j in range(expected.shape[1]):
        sign = np.sign(coords[:, j] @ expected[:, j])
        np.testing.assert_allclose(sign * coords[:, j], expected[:, j], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("as_sparse", [True, False])
def test_codes_projection_matches_dense_svd(as_sparse):
    Z = sparse_codes()
    proj = pca_projection(sp.csr_matrix(Z) if as_sparse else Z, 2, seed=0)
    coords, ratio, components = dense_pca(Z, 2)
    assert proj.coords.dtype == np.float32 and proj.coords.shape == (500, 2)
    assert proj.source == "codes"
    np.testing.assert_allclose(proj.explained_variance_ratio, ratio, rtol=1e-4)
    assert_same_up_to_sign(proj.coords, coords)
    np.testing.assert_allclose(np.abs(proj.components), np.abs(components), atol=1e-4)
    np.testing.assert_allclose(proj.mean, Z.mean(0), rtol=1e-5)


def test_inputs_projection_and_determinism():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 8)).astype(np.float32) * np.arange(1, 9, dtype=np.float32)
    a = pca_projection(X, 2, source="inputs")
    b = pca_projection(X, 2, source="inputs")
    coords, ratio, _ = dense_pca(X, 2)
    assert a.source == "inputs"
    np.testing.assert_allclose(a.explained_variance_ratio, ratio, rtol=1e-4)
    assert_same_up_to_sign(a.coords, coords)
    np.testing.assert_array_equal(a.coords, b.coords)
    sparse_a = pca_projection(sp.csr_matrix(sparse_codes()), 2, seed=3)
    sparse_b = pca_projection(sp.csr_matrix(sparse_codes()), 2, seed=3)
    np.testing.assert_array_equal(sparse_a.coords, sparse_b.coords)


def test_bad_arguments_raise():
    Z = sparse_codes(n=20, n_units=3)
    with pytest.raises(ValueError, match="n_components must be at most 2"):
        pca_projection(sp.csr_matrix(Z), 3)
    with pytest.raises(ValueError, match="source must be"):
        pca_projection(Z, 2, source="pixels")
    with pytest.raises(ValueError, match="data must be 2-D"):
        pca_projection(Z[0], 1)
    with pytest.raises(ValueError, match="finite"):
        pca_projection(np.full((5, 3), np.nan), 1)


@pytest.mark.parametrize("as_sparse", [True, False])
def test_constant_data_projects_to_the_origin_without_warnings(as_sparse):
    Z = np.zeros((10, 4), dtype=np.float32)
    Z[:, 1] = 2.0
    proj = pca_projection(sp.csr_matrix(Z) if as_sparse else Z, 2)
    np.testing.assert_array_equal(proj.coords, np.zeros((10, 2)))
    np.testing.assert_array_equal(proj.explained_variance_ratio, [0, 0])
    np.testing.assert_allclose(proj.mean, [0, 2, 0, 0], rtol=1e-6)
