"""Regressions from the third fuzzing round of the public API: inputs of other magnitudes,
layouts and kinds than the earlier rounds tried."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
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
