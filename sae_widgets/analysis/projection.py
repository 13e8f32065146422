"""2-D PCA of the unit codes (sparse) or of the inputs (dense), for the brushable scatter.

Sparse codes are never densified: scikit-learn's PCA with the ARPACK solver centres a sparse
matrix implicitly (a linear operator), so memory stays at the size of the codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.decomposition import PCA
from sklearn.utils.sparsefuncs import mean_variance_axis

from sae_widgets.analysis.checks import check_positive_int

__all__ = ["Projection", "pca_projection"]


@dataclass(frozen=True)
class Projection:
    """A linear 2-D (or n-D) view of the samples."""

    coords: NDArray[np.float32]
    """(n_samples, n_components) float32 coordinates, ready to send to the browser."""
    explained_variance_ratio: NDArray[np.float64]
    """(n_components,) share of the total variance each component explains."""
    components: NDArray[np.float32]
    """(n_components, n_features) principal directions."""
    mean: NDArray[np.float32]
    """(n_features,) mean that was subtracted before projecting."""
    source: str
    """What was projected: "codes" or "inputs"."""


def _has_no_variance(matrix: Any) -> bool:
    """True when every sample is the same point (PCA then has no direction to find)."""
    if sp.issparse(matrix):
        _, variances = mean_variance_axis(matrix, axis=0)
        return bool(np.all(variances == 0))
    return bool(np.all(matrix == matrix[:1]))


def pca_projection(
    data: Any, n_components: int = 2, *, source: str = "codes", seed: int = 0
) -> Projection:
    """Project `data` onto its first `n_components` principal components.

    Parameters
    ----------
    data:
        (n_samples, n_features) dense array or scipy sparse matrix (e.g. ``CodeStore.csr``).
    n_components:
        Number of components; below min(n_samples, n_features) for sparse input (ARPACK).
    source:
        Label stored on the result ("codes" or "inputs").
    seed:
        Seeds ARPACK's start vector, so the same data always gives the same coordinates.

    Dense data uses scikit-learn's automatic solver (covariance eigendecomposition when
    features are few, randomized SVD when they are many); sparse data uses ARPACK on the
    implicitly centred matrix. Component signs follow scikit-learn's deterministic convention.
    """
    n_components = check_positive_int(n_components, "n_components")
    if source not in ("codes", "inputs"):
        raise ValueError(f"source must be 'codes' or 'inputs'; got {source!r}")
    sparse = sp.issparse(data)
    matrix = sp.csr_matrix(data) if sparse else np.asarray(data)
    if matrix.ndim != 2:
        raise ValueError(f"data must be 2-D (n_samples, n_features); got shape {matrix.shape}")
    n_samples, n_features = matrix.shape
    limit = min(n_samples, n_features) - (1 if sparse else 0)
    if n_components > limit:
        raise ValueError(
            f"n_components must be at most {limit} for data of shape {matrix.shape}"
            + (" (sparse input uses ARPACK, which needs fewer than min(shape))" if sparse else "")
        )
    if not sparse and not np.isfinite(matrix).all():
        raise ValueError("data must be finite; got NaN or infinity")
    if sparse and matrix.dtype != np.float32:
        matrix = matrix.astype(np.float32)
    if _has_no_variance(matrix):  # e.g. every sample got the same codes; ARPACK cannot start
        return Projection(
            coords=np.zeros((n_samples, n_components), dtype=np.float32),
            explained_variance_ratio=np.zeros(n_components),
            components=np.eye(n_components, n_features, dtype=np.float32),
            mean=np.asarray(matrix.mean(axis=0), dtype=np.float32).ravel(),
            source=source,
        )
    pca = PCA(
        n_components=n_components, svd_solver="arpack" if sparse else "auto", random_state=seed
    )
    with np.errstate(invalid="ignore", divide="ignore"):  # constant data: 0/0 variance ratio
        coords = pca.fit_transform(matrix)
    ratio = np.nan_to_num(np.asarray(pca.explained_variance_ratio_, dtype=np.float64))
    return Projection(
        coords=np.ascontiguousarray(coords, dtype=np.float32),
        explained_variance_ratio=ratio,
        components=np.asarray(pca.components_, dtype=np.float32),
        mean=np.asarray(pca.mean_, dtype=np.float32).ravel(),
        source=source,
    )
