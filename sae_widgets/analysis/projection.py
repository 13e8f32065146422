"""2-D PCA of the unit codes (sparse) or of the inputs (dense), for the brushable scatter.

Sparse codes are never densified: scikit-learn's PCA with the ARPACK solver centres a sparse
matrix implicitly (a linear operator), so memory stays at the size of the codes.

Beyond `fit_rows` samples (1e6 codes, a store on disk) the PCA is fitted on a random sample of
`fit_rows` rows and applied to every row in chunks: two directions are estimated as well from
1e5 rows, and the projection then costs one sparse (or chunked dense) product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.decomposition import PCA
from sklearn.utils.sparsefuncs import mean_variance_axis

from sae_widgets.analysis.checks import check_finite, check_positive_int, check_seed, numpy_of

__all__ = ["Projection", "display_subset", "pca_2d", "pca_projection"]

FIT_ROWS = 100_000
_CHUNK = 65_536
# Data whose largest |value| lies outside this range is rescaled before the PCA (float32
# squares overflow past ~1e19 and underflow below ~1e-19).
_SCALE_LOW, _SCALE_HIGH = 2.0**-40, 2.0**40
_FLOAT32_MAX = float(np.finfo(np.float32).max)


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


def _power_of_two_scale(matrix: Any) -> float:
    """1.0 for data of ordinary magnitude; otherwise the power of two at or below its largest
    |value| (dividing by it is exact), so that squares and sums stay inside float32. At or
    below, not nearest: float32 data near its maximum rounded up to 2**128, which float32
    cannot hold (the data became 0, the mean NaN)."""
    values = matrix.data if sp.issparse(matrix) else matrix
    if values.size == 0:
        return 1.0
    peak = max(-float(values.min()), float(values.max()))  # no |values| temporary
    if peak == 0.0 or _SCALE_LOW <= peak <= _SCALE_HIGH:
        return 1.0
    return float(2.0 ** np.floor(np.log2(peak)))


def _float32_coords(values: Any) -> NDArray[np.float32]:
    """`values` as float32, or a ValueError: float64 data past float32's range has
    coordinates (and a mean) float32 cannot hold (they were silently inf)."""
    values = np.asarray(values, dtype=np.float64)
    peak = float(np.abs(values).max()) if values.size else 0.0
    if not peak <= _FLOAT32_MAX:
        raise ValueError(
            f"data projects to coordinates as large as {peak:.3g}, beyond float32's range "
            f"({_FLOAT32_MAX:.3g}); divide data by a constant first"
        )
    return np.ascontiguousarray(values, dtype=np.float32)


def _checked_values(values: Any) -> None:
    """TypeError for non-numbers, ValueError for NaN or infinity (dense data or a sparse
    matrix's stored values)."""
    if values.dtype.kind not in "biuf":
        raise TypeError(f"data must hold real numbers; got dtype {values.dtype}")
    check_finite(values, "data", "must be finite; got NaN or infinity")


def _is_row_source(data: Any) -> bool:
    """Rows on disk read by index and in chunks (an ActivationStore's X), not an array."""
    return not isinstance(data, np.ndarray) and all(
        hasattr(data, name) for name in ("shape", "take", "chunks")
    )


def pca_projection(
    data: Any,
    n_components: int = 2,
    *,
    source: str = "codes",
    seed: int = 0,
    fit_rows: int | None = FIT_ROWS,
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

    fit_rows:
        With more samples than this, fit on a random `fit_rows` of them (seeded) and project
        every sample in chunks; None: always fit on all.

    Dense data uses scikit-learn's automatic solver (covariance eigendecomposition when
    features are few, randomized SVD when they are many); sparse data uses ARPACK on the
    implicitly centred matrix. Component signs follow scikit-learn's deterministic convention.
    A row source (an ActivationStore's X) is read in chunks, never whole.
    """
    n_components = check_positive_int(n_components, "n_components")
    seed = check_seed(seed)
    if source not in ("codes", "inputs"):
        raise ValueError(f"source must be 'codes' or 'inputs'; got {source!r}")
    if fit_rows is not None:
        fit_rows = check_positive_int(fit_rows, "fit_rows", minimum=2)
    data = numpy_of(getattr(data, "csr", data), "data")  # a CodeStore: its sparse codes
    if not hasattr(data, "shape") and not hasattr(data, "__len__"):
        raise TypeError(
            f"data must be an (n_samples, n_features) array or scipy sparse matrix; got "
            f"{type(data).__name__}"
        )
    n_rows = int(data.shape[0]) if hasattr(data, "shape") else len(data)
    if _is_row_source(data) or (fit_rows is not None and n_rows > fit_rows):
        return _fit_sample_project_all(data, n_components, source, seed, fit_rows or n_rows)
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
    _checked_values(matrix.data if sparse else matrix)  # sparse NaN too (ARPACK's error)
    # PCA is scale-equivariant: data of magnitude 1e20..1e30 (which an SAE trains on) would
    # overflow float32 squares (ARPACK then fails), so project data / scale and scale back;
    # scaled before the float32 cast, which made float64 values past its range inf
    scale = _power_of_two_scale(matrix)
    if scale != 1.0:
        matrix = matrix / scale
    if sparse and matrix.dtype != np.float32:
        matrix = matrix.astype(np.float32)
    if _has_no_variance(matrix):  # e.g. every sample got the same codes; ARPACK cannot start
        return Projection(
            coords=np.zeros((n_samples, n_components), dtype=np.float32),
            explained_variance_ratio=np.zeros(n_components),
            components=np.eye(n_components, n_features, dtype=np.float32),
            mean=_float32_coords(np.asarray(matrix.mean(axis=0), np.float64) * scale).ravel(),
            source=source,
        )
    pca = PCA(
        n_components=n_components, svd_solver="arpack" if sparse else "auto", random_state=seed
    )
    with np.errstate(invalid="ignore", divide="ignore"):  # constant data: 0/0 variance ratio
        coords = pca.fit_transform(matrix)
    ratio = np.nan_to_num(np.asarray(pca.explained_variance_ratio_, dtype=np.float64))
    return Projection(
        coords=_float32_coords(np.asarray(coords, dtype=np.float64) * scale),
        explained_variance_ratio=ratio,
        components=np.asarray(pca.components_, dtype=np.float32),
        mean=_float32_coords(np.asarray(pca.mean_, dtype=np.float64) * scale).ravel(),
        source=source,
    )


def _fit_sample_project_all(
    data: Any, n_components: int, source: str, seed: int, fit_rows: int
) -> Projection:
    """PCA fitted on `fit_rows` random rows (sorted: reads stay sequential), then applied to
    every row, chunk by chunk."""
    n = int(data.shape[0])
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(n, fit_rows), replace=False))
    if sp.issparse(data):
        data = sp.csr_matrix(data)
        sample: Any = data[rows]
    elif _is_row_source(data):
        sample = np.asarray(data.take(rows))
    else:
        data = np.asarray(data)
        sample = data[rows]
    fitted = pca_projection(sample, n_components, source=source, seed=seed, fit_rows=None)
    components, mean = fitted.components, fitted.mean
    offset = mean.astype(np.float64) @ components.T.astype(np.float64)
    coords = np.empty((n, n_components), dtype=np.float32)
    if sp.issparse(data):
        _checked_values(data.data)
        coords[:] = _float32_coords(data @ components.T.astype(np.float64) - offset)
        return Projection(coords, fitted.explained_variance_ratio, components, mean, source)
    chunks = (
        data.chunks(_CHUNK)
        if _is_row_source(data)
        else (data[lo : lo + _CHUNK] for lo in range(0, n, _CHUNK))
    )
    start = 0
    for chunk in chunks:
        block = np.asarray(chunk)
        _checked_values(block)  # before a float32 cast turns values past its range into inf
        wide = np.float64 if block.dtype == np.float64 else np.float32
        coords[start : start + len(block)] = _float32_coords(
            block.astype(wide, copy=False) @ components.T.astype(wide) - offset
        )
        start += len(block)
    return Projection(coords, fitted.explained_variance_ratio, components, mean, source)


def pca_2d(data: Any, source: str, seed: int) -> Projection:
    """2-D PCA coordinates even when the data has fewer than 2 directions to give (one or two
    samples, a 2-unit SAE): the missing component is a zero column (no variance along it)."""
    if sp.issparse(data) and min(data.shape) <= 2:  # ARPACK needs n_components < min(shape)
        data = data.toarray()  # at most 2 rows or 2 columns: small
    limit = min(data.shape) - (1 if sp.issparse(data) else 0)
    if limit >= 2:
        return pca_projection(data, 2, source=source, seed=seed)
    one = pca_projection(data, 1, source=source, seed=seed)
    return Projection(
        coords=np.hstack([one.coords, np.zeros_like(one.coords)]),
        explained_variance_ratio=np.append(one.explained_variance_ratio, 0.0),
        components=np.vstack([one.components, np.zeros_like(one.components)]),
        mean=one.mean,
        source=source,
    )


def _grid_cells(xy: Any, grid: int) -> NDArray[np.int64]:
    """(n, 2) cell of each point in a grid x grid cut of the points' bounding box. In float64
    halves (high - low overflowed past 1.8e308); a NaN or infinite point, which cannot be
    drawn, counts in the first cell (its NaN became a negative cell, and bincount failed)."""
    points = np.asarray(xy, dtype=np.float64)
    finite = np.isfinite(points).all(axis=1)
    if not finite.any():
        return np.zeros(points.shape, dtype=np.int64)
    low, high = points[finite].min(axis=0) / 2, points[finite].max(axis=0) / 2
    half_span = np.where(high > low, high - low, 1.0)
    with np.errstate(invalid="ignore"):
        fraction = np.nan_to_num((points / 2 - low) / half_span, nan=0.0)
    return np.minimum((np.clip(fraction, 0.0, 1.0) * grid).astype(np.int64), grid - 1)


def display_subset(
    coords: Any, max_points: int = 20_000, *, grid: int = 128, seed: int = 0
) -> NDArray[np.int64]:
    """Sorted indices of at most `max_points` samples to draw from a 2-D scatter.

    Every sample stays selectable (a brush goes through all coordinates); only drawing is
    decimated. The subset keeps the shape of the cloud: the plane is cut into grid x grid
    cells and each cell keeps up to the same number of random points, so sparse regions and
    outliers survive while dense regions are thinned. The same coordinates and seed always give
    the same subset, so a view can send it once and then only colours for it.
    """
    max_points = check_positive_int(max_points, "max_points")
    grid = check_positive_int(grid, "grid")
    seed = check_seed(seed)
    xy = np.asarray(numpy_of(coords, "coords"))
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise ValueError(f"coords must have shape (n_samples, >=2); got {xy.shape}")
    n = xy.shape[0]
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    cell_xy = _grid_cells(xy[:, :2], grid)
    cell = cell_xy[:, 0] * grid + cell_xy[:, 1]
    counts = np.bincount(cell, minlength=grid * grid)
    # the largest per-cell cap whose total stays within max_points
    caps = np.sort(counts[counts > 0])
    kept_at = np.cumsum(caps) + caps * (len(caps) - 1 - np.arange(len(caps)))
    fits = np.flatnonzero(kept_at <= max_points)
    cap = int(caps[fits[-1]]) if fits.size else 0
    if fits.size and fits[-1] + 1 < len(caps):  # room left: raise the cap to just below next
        above = len(caps) - fits[-1] - 1
        cap += (max_points - int(kept_at[fits[-1]])) // above
    elif not fits.size:
        cap = max_points // len(caps)
    cap = max(cap, 1)
    order = np.random.default_rng(seed).permutation(n)
    by_cell = order[np.argsort(cell[order], kind="stable")]  # random order within each cell
    starts = np.cumsum(counts) - counts
    rank = np.arange(n) - np.repeat(starts, counts)
    keep = by_cell[rank < cap]
    rng = np.random.default_rng(seed + 1)
    if keep.size > max_points:  # cells of size 1 under a cap of 1 can still overflow
        keep = rng.choice(keep, size=max_points, replace=False)
    elif keep.size < max_points:  # the cap is an integer: fill up with each cell's next point
        spare = by_cell[rank == cap]
        extra = rng.choice(spare, size=min(spare.size, max_points - keep.size), replace=False)
        keep = np.concatenate([keep, extra])
    return np.sort(keep).astype(np.int64)
