"""Reconstruction with only the first n units: what a Matryoshka SAE's nested prefixes are
trained for (any SAE can be measured the same way, as a baseline).

Pure numpy/scipy over the codes of a dataset: the prefix of n units reconstructs a sample as
``codes[:, :n] @ components[:n] + bias`` with the codes of the whole SAE (the same codes the
full reconstruction uses; a Matryoshka SAE is trained so that these partial sums work).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sae_widgets.analysis.checks import check_positive_int

__all__ = ["PrefixMetrics", "check_prefix_sizes", "prefix_metrics", "prefix_reconstruction"]


@dataclass(frozen=True)
class PrefixMetrics:
    """Reconstruction figures of nested prefixes of units, smallest prefix first."""

    sizes: NDArray[np.int64]
    """(p,) numbers of units kept: units 0..n-1."""
    fvu: NDArray[np.float64]
    """(p,) fraction of variance unexplained over the data given."""
    mse: NDArray[np.float64]
    """(p,) mean squared error per element."""
    l0: NDArray[np.float64]
    """(p,) mean number of the prefix's units active per sample."""

    def as_rows(self) -> list[dict[str, float]]:
        """One dict per prefix: n_units, fvu, mse, l0."""
        return [
            {"n_units": int(n), "fvu": float(f), "mse": float(m), "l0": float(z)}
            for n, f, m, z in zip(self.sizes, self.fvu, self.mse, self.l0, strict=True)
        ]


def check_prefix_sizes(sizes: Any, n_units: int) -> NDArray[np.int64]:
    """`sizes` as sorted unique ints in [1, n_units], or a ValueError naming `sizes`."""
    values = np.atleast_1d(np.asarray(sizes))
    if values.size == 0 or values.dtype.kind not in "iu":
        raise ValueError(f"sizes must be integers in [1, n_units={n_units}]; got {sizes!r}")
    if values.min() < 1 or values.max() > n_units:
        raise ValueError(f"sizes must be integers in [1, n_units={n_units}]; got {sizes!r}")
    return np.unique(values.astype(np.int64))


def _codes(codes: Any, n_units: int) -> sp.csr_matrix:
    matrix = sp.csr_matrix(codes, dtype=np.float64)
    if matrix.shape[1] != n_units:
        raise ValueError(f"codes must have {n_units} columns (units); got {matrix.shape}")
    return matrix


def prefix_metrics(
    X: Any,
    codes: Any,
    components: Any,
    bias: Any,
    sizes: Any,
    chunk_size: int = 4096,
) -> PrefixMetrics:
    """FVU, MSE and L0 of each prefix of `sizes` units over X.

    X (n, d) the inputs; codes (n, n_units) their unit activations (dense or scipy sparse);
    components (n_units, d) the decoder rows; bias (d,) the decoder bias. Computed in chunks
    of rows, each prefix adding its group of units to the previous one's reconstruction.
    """
    components = np.asarray(components, dtype=np.float64)
    n_units, d = components.shape
    sizes = check_prefix_sizes(sizes, n_units)
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    matrix = _codes(codes, n_units)
    shape = tuple(np.shape(X))
    if len(shape) != 2 or shape != (matrix.shape[0], d) or shape[0] == 0:
        raise ValueError(
            f"X must have shape ({matrix.shape[0]}, {d}) to match codes and components; got {shape}"
        )
    n = shape[0]
    bias = np.asarray(bias, dtype=np.float64).reshape(d)
    sq_err = np.zeros(len(sizes))
    active = np.zeros(len(sizes))
    bounds = np.concatenate([[0], sizes])
    shift = np.asarray(X[: min(n, chunk_size)], dtype=np.float64).mean(0)
    sum_D, sumsq_D = np.zeros(d), np.zeros(d)  # about `shift`: no cancellation
    for start in range(0, n, chunk_size):
        rows = slice(start, start + chunk_size)
        x, c = np.asarray(X[rows], dtype=np.float64), matrix[rows].tocsc()
        centred = x - shift
        sum_D += centred.sum(0)
        sumsq_D += (centred**2).sum(0)
        x_hat = np.broadcast_to(bias, x.shape).copy()
        for i in range(len(sizes)):
            group = c[:, bounds[i] : bounds[i + 1]]
            x_hat += group @ components[bounds[i] : bounds[i + 1]]
            sq_err[i] += float(((x - x_hat) ** 2).sum())
            active[i] += float((group != 0).sum())
    total = float((sumsq_D - sum_D**2 / n).sum())
    fvu = sq_err / total if total > 0 else np.full(len(sizes), np.nan)
    return PrefixMetrics(sizes, fvu, sq_err / (n * d), np.cumsum(active) / n)


def prefix_reconstruction(
    codes: Any, components: Any, bias: Any, n_units: int
) -> NDArray[np.float32]:
    """(m, d) reconstruction of m samples from their codes' first `n_units` units only."""
    components = np.asarray(components, dtype=np.float32)
    total = components.shape[0]
    n = int(check_prefix_sizes([n_units], total)[0])
    matrix = _codes(codes, total)[:, :n]
    out = np.asarray(matrix @ components[:n], dtype=np.float32)
    return out + np.asarray(bias, dtype=np.float32).reshape(1, -1)
