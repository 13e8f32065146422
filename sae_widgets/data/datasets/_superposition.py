"""Sparse superposition: many ground-truth feature directions packed into fewer dimensions.

X = coefficients @ F with F (n_features, dim) unit-norm random directions and coefficients
sparse (about `active` nonzeros per sample, magnitudes Uniform(0, 1)). The coefficients are
sampled directly in sparse form, chunk by chunk, so n = 1e6 never needs an (n, n_features)
dense matrix (except the latent Gaussians of the correlated option, one chunk at a time).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtri

from sae_widgets.data.checks import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_memory,
    check_seed,
)
from sae_widgets.data.dataset import Attribute, Dataset

_CHUNK_SAMPLES = 1 << 17
# a coefficient a probe may set: drawn ones are 0..1, and X + value * feature stays far
# inside float32 (1e300 became inf rows)
_COEFFICIENT_LIMITS = (-1e6, 1e6)
_CHUNK_LATENTS = 1 << 22  # (samples x features) Gaussians per chunk for the copula
_CORRELATION_RANK = 8  # latent factors shared by all features in the copula
_CORRELATION_STRENGTH = 0.6  # share of each latent's variance that comes from those factors
_CHILD_GIVEN_PARENT = 0.75  # hierarchy: a firing parent brings one of its children this often


def hierarchy_parents(n_features: int, hierarchy: int = 0, children: int = 4) -> np.ndarray:
    """(n_features,) parent of each feature of `superposition(..., hierarchy=, children=)`:
    features 0..hierarchy-1 are parents, parent p's children are features
    hierarchy + p * children + i (i < children); -1 for every feature without a parent."""
    n_features, hierarchy, children = _check_hierarchy(n_features, hierarchy, children)
    parents = np.full(n_features, -1, dtype=np.int64)
    first = hierarchy
    parents[first : first + hierarchy * children] = np.repeat(np.arange(hierarchy), children)
    return parents


def _check_hierarchy(n_features: int, hierarchy: int, children: int) -> tuple[int, int, int]:
    """The three as ints, or an error naming the one that cannot work."""
    n_features = check_int(n_features, "n_features", 1)
    hierarchy = check_int(hierarchy, "hierarchy", 0)
    children = check_int(children, "children", 0)
    check_memory(8 * n_features, "n_features")
    if hierarchy and (children < 1 or hierarchy * (1 + children) > n_features):
        raise ValueError(
            f"hierarchy={hierarchy} parents with children={children} each need n_features >= "
            f"{hierarchy * (1 + max(children, 1))} and children >= 1; got n_features={n_features}"
        )
    return n_features, hierarchy, children


def _add_children(
    rng: np.random.Generator, codes: sp.csr_matrix, hierarchy: int, children: int
) -> sp.csr_matrix:
    """Children fire only with their parent: drop the children's own draws, then each firing
    parent brings one child (chosen uniformly) with probability _CHILD_GIVEN_PARENT."""
    coo = codes.tocoo()
    first, stop = hierarchy, hierarchy * (1 + children)
    keep = (coo.col < first) | (coo.col >= stop)
    rows, cols, values = coo.row[keep], coo.col[keep], coo.data[keep]
    is_parent = cols < hierarchy
    brings = is_parent & (rng.random(cols.shape[0]) < _CHILD_GIVEN_PARENT)
    child_rows = rows[brings]
    child_cols = first + cols[brings] * children + rng.integers(0, children, child_rows.shape[0])
    child_values = 1.0 - rng.random(child_rows.shape[0], dtype=np.float32)
    out = sp.csr_matrix(
        (
            np.concatenate([values, child_values]),
            (np.concatenate([rows, child_rows]), np.concatenate([cols, child_cols])),
        ),
        shape=codes.shape,
    )
    out.sort_indices()
    return out


def firing_probabilities(n_features: int, active: float, firing: str = "uniform") -> np.ndarray:
    """Per-feature firing probability p_j with sum(p) == active.

    uniform: every p_j = active / n_features. zipf: p_j proportional to 1 / (j + 1), capped at 1
    with the excess handed to the uncapped features (so the expected count stays `active`).
    """
    n_features = check_int(n_features, "n_features", 1)
    # p, and for zipf its weights and mask: refused here, not numpy's raw MemoryError
    check_memory(3 * 8 * n_features, "n_features", "ask for fewer features")
    active = check_float(active, "active")
    if not 0 < active <= n_features:
        raise ValueError(f"active must be in (0, n_features={n_features}]; got {active!r}")
    check_choice(firing, "firing", ("uniform", "zipf"))
    if firing == "uniform":
        return np.full(n_features, active / n_features)
    if firing != "zipf":
        raise ValueError(f"firing must be 'uniform' or 'zipf'; got {firing!r}")
    weights = 1.0 / np.arange(1, n_features + 1)
    p = np.zeros(n_features)
    capped = np.zeros(n_features, dtype=bool)
    # water-filling: cap the largest at 1, rescale the rest, until nothing exceeds 1
    while True:
        free = ~capped
        remaining = active - capped.sum()
        p[free] = weights[free] * remaining / weights[free].sum()
        p[capped] = 1.0
        over = free & (p > 1.0)
        if not over.any():
            return np.minimum(p, 1.0)
        capped |= over


def _independent_codes(
    rng: np.random.Generator, m: int, p: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of firing features for m samples, features firing independently."""
    counts = rng.binomial(m, p)
    rows = [rng.choice(m, size=int(c), replace=False) for c in counts]
    cols = np.repeat(np.arange(p.shape[0]), counts)
    return np.concatenate(rows) if rows else np.zeros(0, np.int64), cols


def _copula_codes(
    rng: np.random.Generator, m: int, thresholds: np.ndarray, loadings: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of firing features with latent Gaussians correlated through a few
    shared factors; feature j fires when its latent exceeds its (1 - p_j) quantile."""
    n_features = loadings.shape[0]
    rows_out, cols_out = [], []
    chunk = max(1, _CHUNK_LATENTS // n_features)
    noise_scale = np.sqrt(1.0 - (loadings**2).sum(1)).astype(np.float32)
    for start in range(0, m, chunk):
        stop = min(m, start + chunk)
        shared = rng.standard_normal((stop - start, loadings.shape[1]), dtype=np.float32)
        latent = rng.standard_normal((stop - start, n_features), dtype=np.float32)
        latent *= noise_scale
        latent += shared @ loadings.T
        r, c = np.nonzero(latent > thresholds)
        rows_out.append(r + start)
        cols_out.append(c)
    return np.concatenate(rows_out), np.concatenate(cols_out)


def _sample_codes(
    rng: np.random.Generator, n: int, p: np.ndarray, correlated: bool
) -> sp.csr_matrix:
    n_features = p.shape[0]
    thresholds = loadings = None
    if correlated:
        # unit-variance latents: correlation = loadings @ loadings.T off the diagonal
        raw = np.abs(rng.standard_normal((n_features, _CORRELATION_RANK)))
        raw /= np.linalg.norm(raw, axis=1, keepdims=True)
        loadings = (raw * np.sqrt(_CORRELATION_STRENGTH)).astype(np.float32)
        with np.errstate(divide="ignore"):
            # p = 1 gives -inf: the feature always fires
            thresholds = np.asarray(ndtri(1.0 - p), dtype=np.float32)
    chunks = []
    for start in range(0, n, _CHUNK_SAMPLES):
        m = min(n, start + _CHUNK_SAMPLES) - start
        if correlated:
            assert thresholds is not None and loadings is not None
            rows, cols = _copula_codes(rng, m, thresholds, loadings)
        else:
            rows, cols = _independent_codes(rng, m, p)
        # Uniform(0, 1] magnitudes: never an exact 0, so every stored entry is a firing
        values = 1.0 - rng.random(rows.shape[0], dtype=np.float32)
        chunk = sp.csr_matrix((values, (rows, cols)), shape=(m, n_features))
        chunk.sort_indices()
        chunks.append(chunk)
    return sp.vstack(chunks, format="csr") if len(chunks) > 1 else chunks[0]


def _strongest_feature(codes: sp.csr_matrix) -> np.ndarray:
    """Column of each row's largest coefficient; -1 for rows where nothing fires."""
    n = codes.shape[0]
    counts = np.diff(codes.indptr)
    nonempty = np.flatnonzero(counts)
    labels = np.full(n, -1, dtype=np.int64)
    if nonempty.size == 0:
        return labels
    row_max = np.maximum.reduceat(codes.data, codes.indptr[nonempty])
    row_of = np.repeat(np.arange(n), counts)
    hits = np.flatnonzero(codes.data == np.repeat(row_max, counts[nonempty]))
    first = np.ones(hits.size, dtype=bool)  # on ties keep the lowest column
    first[1:] = row_of[hits[1:]] != row_of[hits[:-1]]
    labels[row_of[hits[first]]] = codes.indices[hits[first]]
    return labels


def _with_coefficient(
    X: np.ndarray, column: sp.csc_matrix, direction: np.ndarray, rows: np.ndarray, value: float
) -> np.ndarray:
    """Rows `rows` of X with the feature's coefficient (`column`) set to `value`."""
    delta = (value - column[rows].toarray().ravel()).astype(np.float32)
    return X[rows] + delta[:, None] * direction


def _sweep_coefficient(
    X: np.ndarray, column: sp.csc_matrix, direction: np.ndarray, rows: np.ndarray, grid: np.ndarray
) -> np.ndarray:
    delta = (grid[:, None] - column[rows].toarray().ravel()[None, :]).astype(np.float32)  # (v, m)
    return X[rows][None] + delta[..., None] * direction


def _feature_attribute(
    j: int, X: np.ndarray, codes_csc: sp.csc_matrix, F: np.ndarray, values: np.ndarray
) -> Attribute:
    direction = F[j]
    column = codes_csc[:, [j]]
    return Attribute(  # partials of module-level functions: the Dataset pickles
        f"feature_{j}",
        values,
        partial(_with_coefficient, X, column, direction),
        n_samples=X.shape[0],
        sweep_fn=partial(_sweep_coefficient, X, column, direction),
        description=f"coefficient of ground-truth feature {j}",
        limits=_COEFFICIENT_LIMITS,
    )


def superposition(
    n: int = 100_000,
    n_features: int = 512,
    dim: int = 256,
    active: float = 5.0,
    seed: int = 0,
    firing: str = "uniform",
    correlated: bool = False,
    hierarchy: int = 0,
    children: int = 4,
) -> Dataset:
    """Synthetic sparse data with known features: X = coefficients @ true_features.

    true_features: (n_features, dim) random unit-norm directions. Each sample fires feature j
    with probability p_j (firing="uniform": active / n_features; "zipf": proportional to
    1 / (j + 1)), so on average `active` features fire; with correlated=True the firing is
    driven by latent Gaussians sharing a few positive factors (a Gaussian copula), which keeps
    each p_j but makes features fire together more often. Magnitudes are Uniform(0, 1).
    `true_codes` holds the coefficients (CSR). labels: the index of each sample's largest
    coefficient, -1 when no feature fires; label_names: "feature_<j>".
    Attributes `feature_<j>` set feature j's coefficient (grid 0..1.5, no identity value).

    hierarchy > 0 adds parent features whose children fire only with them (the toy of
    feature absorption): features 0..hierarchy-1 are parents (firing as above), each with
    `children` child features right after them (see `hierarchy_parents`); a firing parent
    brings one of its children, chosen uniformly, 3 times in 4. Children are otherwise
    silent, other features unchanged. Needs n_features >= hierarchy * (1 + children).
    """
    for arg, value in (("n", n), ("n_features", n_features), ("dim", dim)):
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
            raise TypeError(f"{arg} must be a positive integer; got {value!r}")
        if value < 1:
            raise ValueError(f"{arg} must be a positive integer; got {value!r}")
    p = firing_probabilities(n_features, active, firing)  # checks active and firing
    seed = check_seed(seed)
    correlated = check_bool(correlated, "correlated")
    _check_hierarchy(n_features, hierarchy, children)
    # X (float32) and the unit-norm features (float64 while drawn)
    check_memory(4 * int(n) * int(dim) + 8 * int(n_features) * int(dim), "superposition(n, dim)")
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n_features, dim))
    F = (F / np.linalg.norm(F, axis=1, keepdims=True)).astype(np.float32)
    codes = _sample_codes(rng, int(n), p, bool(correlated))
    if hierarchy:
        codes = _add_children(rng, codes, int(hierarchy), int(children))
    X = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, _CHUNK_SAMPLES):
        stop = min(n, start + _CHUNK_SAMPLES)
        X[start:stop] = codes[start:stop] @ F
    codes_csc = codes.tocsc()
    grid = np.round(np.linspace(0.0, 1.5, 16), 6)
    attributes = {
        f"feature_{j}": _feature_attribute(j, X, codes_csc, F, grid) for j in range(n_features)
    }
    return Dataset(
        X,
        labels=_strongest_feature(codes),
        label_names=[f"feature_{j}" for j in range(n_features)],
        true_features=F,
        true_codes=codes,
        attributes=attributes,
        name="superposition",
    )
