"""Matching the units of one SAE to the units of another by decoder cosine.

Two decoders (rows are unit directions, one input space) give an (n_a, n_b) matrix of
cosines. Two ways to read it:

- **nearest**: for each unit, its `n` most similar units on the other side (both directions);
- **Hungarian**: the one-to-one assignment with the largest total cosine
  (`scipy.optimize.linear_sum_assignment`; different widths leave the surplus unmatched).

The cosine matrix of 4k x 16k units is 256 MB in float32, so `nearest_matches` never builds
it: it walks blocks of rows (at most `block_entries` cosines at a time) and keeps a running
top-n per column. The Hungarian assignment needs the whole matrix; beyond `max_dense` entries
it runs on the sparse graph of each unit's `candidates` nearest units instead (scipy's
`min_weight_full_bipartite_matching`), which bounds memory and is exact whenever the best
assignment only uses such candidate pairs (always true of the high-cosine pairs that matter).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from sae_widgets.analysis.checks import check_finite, check_positive_int

__all__ = [
    "Assignment",
    "NearestMatches",
    "as_decoder",
    "decoder_cosines",
    "hungarian_matches",
    "nearest_matches",
]

BLOCK_ENTRIES = 1 << 20
"""Cosines computed at a time by the blocked functions (1M float32 = 4 MB; sorting a block
takes a few times that)."""

MAX_DENSE = 1 << 25
"""Largest n_a * n_b that the Hungarian assignment solves on the dense matrix (256 MB as
float64, what scipy's solver works in)."""


CANDIDATES = 16
"""Nearest units per unit (each way) in the sparse Hungarian graph."""


def _readonly(array: NDArray[Any]) -> NDArray[Any]:
    array.flags.writeable = False
    return array


def as_decoder(value: Any, name: str) -> NDArray[np.float32]:
    """(n_units, d) float32 decoder rows from an array, a tensor or an object with
    ``components_`` (a fitted SAE); raises naming the argument `name`."""
    if hasattr(value, "components_"):
        value = value.components_
    if hasattr(value, "detach"):  # a torch tensor (bfloat16 too: numpy has no such dtype)
        value = value.detach().cpu()
        value = (value.float() if value.is_floating_point() else value).numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a 2-D array of decoder rows; got {exc}") from None
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise TypeError(
            f"{name} must be a real (n_units, d) array or a fitted SAE; got "
            f"{type(value).__name__} of dtype {array.dtype}"
        )
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(
            f"{name} must be a non-empty 2-D (n_units, d) decoder matrix; got shape {array.shape}"
        )
    array = array.astype(np.float32, copy=False)
    check_finite(array, name, "must hold finite values; got NaN or infinity")
    return array


def _unit_rows(decoder: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(decoder, axis=1, keepdims=True)
    return np.divide(decoder, norms, out=np.zeros_like(decoder), where=norms > 0)


def _pair(decoder_a: Any, decoder_b: Any) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    a = as_decoder(decoder_a, "decoder_a")
    b = as_decoder(decoder_b, "decoder_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"decoder_b must have decoder_a's input dimension {a.shape[1]}; got shape {b.shape}"
        )
    return _unit_rows(a), _unit_rows(b)


def _block_rows(n_b: int, block_entries: int) -> int:
    return max(1, check_positive_int(block_entries, "block_entries") // max(n_b, 1))


def decoder_cosines(
    decoder_a: Any, decoder_b: Any, *, absolute: bool = False
) -> NDArray[np.float32]:
    """(n_a, n_b) cosines between the decoder rows of two SAEs (|cosine| if `absolute`).

    A unit with an all-zero decoder row has cosine 0 with everything. Dense: meant for small
    SAEs and tests; `nearest_matches` gives the top entries without building this matrix.
    """
    a, b = _pair(decoder_a, decoder_b)
    cosines = a @ b.T
    return np.abs(cosines) if absolute else cosines


def _top_sorted(
    scores: NDArray[np.float32], n: int, axis: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Indices and values of the n largest along `axis`, largest first (ties: lower index)."""
    size = scores.shape[axis]
    if n < size:
        picked = np.argpartition(-scores, n - 1, axis=axis).take(np.arange(n), axis=axis)
    else:
        shape = [1, 1]
        shape[axis] = size
        picked = np.broadcast_to(np.arange(size).reshape(shape), scores.shape).copy()
    values = np.take_along_axis(scores, picked, axis=axis)
    order = np.lexsort((picked, -values), axis=axis)
    return (
        np.take_along_axis(picked, order, axis=axis).astype(np.int64),
        np.take_along_axis(values, order, axis=axis),
    )


@dataclass(frozen=True)
class NearestMatches:
    """Each unit's `n` most similar units on the other side, most similar first.

    ``a_to_b[i, j]`` is the j-th best unit of B for unit i of A and ``cos_a_to_b[i, j]`` its
    cosine; ``b_to_a`` and ``cos_b_to_a`` the same from B's side. Ties go to the lower index.
    """

    a_to_b: NDArray[np.int64]
    cos_a_to_b: NDArray[np.float32]
    b_to_a: NDArray[np.int64]
    cos_b_to_a: NDArray[np.float32]

    def head(self, n: int) -> NearestMatches:
        """The first `n` matches of each unit (all of them if fewer)."""
        return NearestMatches(
            a_to_b=self.a_to_b[:, :n],
            cos_a_to_b=self.cos_a_to_b[:, :n],
            b_to_a=self.b_to_a[:, :n],
            cos_b_to_a=self.cos_b_to_a[:, :n],
        )


def nearest_matches(
    decoder_a: Any,
    decoder_b: Any,
    n: int = 5,
    *,
    absolute: bool = False,
    block_entries: int = BLOCK_ENTRIES,
) -> NearestMatches:
    """The `n` nearest units (decoder cosine) of every unit of A in B and of B in A.

    Memory: one block of at most `block_entries` cosines plus the (n_b, n) running best of B's
    side; never the whole (n_a, n_b) matrix. `n` is capped at the other side's width.
    """
    a, b = _pair(decoder_a, decoder_b)
    n = check_positive_int(n, "n")
    n_ab, n_ba = min(n, len(b)), min(n, len(a))
    rows = _block_rows(len(b), block_entries)
    a_to_b = np.zeros((len(a), n_ab), np.int64)
    cos_a_to_b = np.zeros((len(a), n_ab), np.float32)
    best_idx = np.zeros((0, len(b)), np.int64)  # running top of B's side: (<= n, n_b)
    best_cos = np.zeros((0, len(b)), np.float32)
    for start in range(0, len(a), rows):
        block = a[start : start + rows] @ b.T
        if absolute:
            block = np.abs(block)
        a_to_b[start : start + rows], cos_a_to_b[start : start + rows] = _top_sorted(
            block, n_ab, axis=1
        )
        # B's side: partition the transposed block row-wise (3x faster than down columns)
        idx, cos = _top_sorted(np.ascontiguousarray(block.T), min(n_ba, len(block)), axis=1)
        idx, cos = idx.T, cos.T
        best_idx = np.concatenate([best_idx, idx + start])
        best_cos = np.concatenate([best_cos, cos])
        if len(best_idx) > n_ba:  # keep the n best of the running and the new candidates
            keep = np.lexsort((best_idx, -best_cos), axis=0)[:n_ba]
            best_idx = np.take_along_axis(best_idx, keep, axis=0)
            best_cos = np.take_along_axis(best_cos, keep, axis=0)
    order = np.lexsort((best_idx, -best_cos), axis=0)
    return NearestMatches(
        a_to_b=_readonly(a_to_b),
        cos_a_to_b=_readonly(cos_a_to_b),
        b_to_a=_readonly(np.take_along_axis(best_idx, order, axis=0).T.copy()),
        cos_b_to_a=_readonly(np.take_along_axis(best_cos, order, axis=0).T.copy()),
    )


@dataclass(frozen=True)
class Assignment:
    """A one-to-one matching of units of A to units of B (min(n_a, n_b) pairs at most).

    ``b_of_a[i]`` is the unit of B matched to unit i of A (-1: unmatched) and ``cos_a[i]`` its
    cosine (NaN when unmatched); ``a_of_b`` and ``cos_b`` the same from B's side. `exact`
    is False when the sparse candidate graph was used (see `hungarian_matches`).
    """

    b_of_a: NDArray[np.int64]
    cos_a: NDArray[np.float32]
    a_of_b: NDArray[np.int64]
    cos_b: NDArray[np.float32]
    exact: bool

    @property
    def pairs(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """(units of A, their units of B, cosines) of the matched pairs, in A's order."""
        matched = np.flatnonzero(self.b_of_a >= 0)
        return matched, self.b_of_a[matched], self.cos_a[matched]


def hungarian_matches(
    decoder_a: Any,
    decoder_b: Any,
    *,
    absolute: bool = False,
    max_dense: int = MAX_DENSE,
    candidates: int = CANDIDATES,
    nearest: NearestMatches | None = None,
) -> Assignment:
    """The one-to-one matching of units of A and B with the largest total decoder cosine.

    Up to `max_dense` cosine entries: scipy's `linear_sum_assignment` on the whole matrix (the
    exact optimum; with different widths every unit of the narrower SAE is matched). Beyond:
    the graph of each unit's `candidates` nearest units (from `nearest`, if given with at
    least that many columns, else computed blockwise) matched by scipy's
    `min_weight_full_bipartite_matching`, where leaving a unit unmatched scores cosine 0; the
    result is marked ``exact=False``.
    """
    a, b = _pair(decoder_a, decoder_b)
    max_dense = check_positive_int(max_dense, "max_dense")
    n_a, n_b = len(a), len(b)
    if n_a * n_b <= max_dense:
        cosines = a @ b.T
        if absolute:
            cosines = np.abs(cosines)
        rows, cols = linear_sum_assignment(cosines.astype(np.float64), maximize=True)
        return _assignment(n_a, n_b, rows, cols, cosines[rows, cols], exact=True)
    candidates = check_positive_int(candidates, "candidates")
    if nearest is None or nearest.a_to_b.shape[1] < min(candidates, n_b):
        nearest = nearest_matches(a, b, candidates, absolute=absolute)
    m_ab, m_ba = min(candidates, n_b), min(candidates, n_a)
    rows = np.concatenate([np.repeat(np.arange(n_a), m_ab), nearest.b_to_a[:, :m_ba].ravel()])
    cols = np.concatenate([nearest.a_to_b[:, :m_ab].ravel(), np.repeat(np.arange(n_b), m_ba)])
    cos = np.concatenate(
        [nearest.cos_a_to_b[:, :m_ab].ravel(), nearest.cos_b_to_a[:, :m_ba].ravel()]
    )
    # An edge found from both sides appears twice, with one cosine: keep one copy.
    _, first = np.unique(rows * n_b + cols, return_index=True)
    rows, cols, cos = rows[first], cols[first], cos[first]
    # Weights 2 - cos lie in [1, 3] (csgraph drops zero weights); one "unmatched" column per
    # unit of A, weight 2 (cosine 0), keeps a full matching possible on any candidate graph.
    rows = np.concatenate([rows, np.arange(n_a)])
    cols = np.concatenate([cols, n_b + np.arange(n_a)])
    weights = np.concatenate([2.0 - cos.astype(np.float64), np.full(n_a, 2.0)])
    graph = sp.csr_matrix((weights, (rows, cols)), shape=(n_a, n_b + n_a))
    row_match, col_match = min_weight_full_bipartite_matching(graph)
    real = col_match < n_b
    matched_a, matched_b = row_match[real], col_match[real]
    cos_pairs = np.einsum("ij,ij->i", a[matched_a], b[matched_b])
    if absolute:
        cos_pairs = np.abs(cos_pairs)
    return _assignment(n_a, n_b, matched_a, matched_b, cos_pairs, exact=False)


def _assignment(n_a: int, n_b: int, rows: Any, cols: Any, cos: Any, *, exact: bool) -> Assignment:
    b_of_a = np.full(n_a, -1, np.int64)
    a_of_b = np.full(n_b, -1, np.int64)
    cos_a = np.full(n_a, np.nan, np.float32)
    cos_b = np.full(n_b, np.nan, np.float32)
    b_of_a[rows], a_of_b[cols] = cols, rows
    cos_a[rows] = cos_b[cols] = np.asarray(cos, np.float32)
    return Assignment(
        b_of_a=_readonly(b_of_a),
        cos_a=_readonly(cos_a),
        a_of_b=_readonly(a_of_b),
        cos_b=_readonly(cos_b),
        exact=exact,
    )


def check_threshold(value: Any, name: str = "threshold") -> float:
    """A cosine threshold as a float in [-1, 1], or raise naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, Integral)):
        raise TypeError(f"{name} must be a float in [-1, 1]; got {type(value).__name__}")
    if not -1.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a cosine in [-1, 1]; got {value}")
    return float(value)
