"""Feature absorption on data with known hierarchical features (the toy of
`sae_widgets.datasets.superposition(..., hierarchy=...)`).

Absorption (Chanin et al. 2024, "A is for Absorption"; SAEBench's absorption metric): a
parent feature is learned by a "main" unit, but on samples where one of its children also
fires, the main unit stays silent and the child's unit carries the parent's direction
instead. With ground truth we measure it directly, for each parent p:

- the main unit is the one whose decoder row has the largest cosine with p's direction;
- "absorbing" units are the others whose decoder row has a cosine of at least `min_cosine`
  with p's direction (they carry part of the parent; unrelated units' small projections in
  a crowded space are not counted);
- `full_absorption`: among p's occurrences together with a child, the fraction where the
  main unit is silent while the absorbing units' reconstruction projects onto p's
  direction by at least `compensation` x p's true coefficient (SAEBench's full absorption,
  the probe being the true direction);
- `absorption_fraction`: over the same samples, the mean share of the projection onto p's
  direction (main + absorbing units) that the absorbing units carry (SAEBench's absorption
  fraction; 0 when the main unit carries it all);
- `miss_alone`: the fraction of p's occurrences without a child where the main unit is
  silent (a baseline: a poorly learned parent, not absorption).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["Absorption", "feature_absorption"]


@dataclass(frozen=True)
class Absorption:
    """Per-parent absorption figures (see the module docstring)."""

    parents: NDArray[np.int64]
    main_units: NDArray[np.int64]
    main_cosine: NDArray[np.float64]
    full_absorption: NDArray[np.float64]
    absorption_fraction: NDArray[np.float64]
    miss_alone: NDArray[np.float64]

    @property
    def mean_full_absorption(self) -> float:
        return float(np.nanmean(self.full_absorption))

    @property
    def mean_absorption_fraction(self) -> float:
        return float(np.nanmean(self.absorption_fraction))


def feature_absorption(
    codes: Any,
    components: Any,
    true_features: Any,
    true_codes: Any,
    parents: Any,
    compensation: float = 0.5,
    min_cosine: float = 0.3,
) -> Absorption:
    """Absorption of every parent feature (features that are some feature's parent).

    codes (n, n_units) unit activations; components (n_units, d) decoder rows;
    true_features (n_features, d) and true_codes (n, n_features) the ground truth;
    parents (n_features,) each feature's parent index or -1.
    """
    Z = sp.csr_matrix(codes, dtype=np.float64)
    T = sp.csc_matrix(true_codes, dtype=np.float64)
    W = np.asarray(components, dtype=np.float64)
    F = np.asarray(true_features, dtype=np.float64)
    parent_of = np.asarray(parents, dtype=np.int64)
    if Z.shape[0] != T.shape[0] or W.shape[0] != Z.shape[1] or F.shape != (T.shape[1], W.shape[1]):
        raise ValueError(
            f"shapes disagree: codes {Z.shape}, components {W.shape}, true_features {F.shape}, "
            f"true_codes {T.shape}"
        )
    if parent_of.shape != (F.shape[0],):
        raise ValueError(f"parents must have shape ({F.shape[0]},); got {parent_of.shape}")
    F = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
    W_unit = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)
    roots = np.unique(parent_of[parent_of >= 0])
    cosine = F[roots] @ W_unit.T  # (p, n_units)
    main = cosine.argmax(axis=1)
    figures = np.full((3, roots.size), np.nan)
    for i, p in enumerate(roots):
        present = T[:, p].toarray().ravel()
        child_on = np.asarray(T[:, np.flatnonzero(parent_of == p)].sum(axis=1)).ravel() > 0
        rows_child = np.flatnonzero((present > 0) & child_on)
        rows_alone = np.flatnonzero((present > 0) & ~child_on)
        along = W @ F[p]  # each unit's decoder component along p's direction
        absorbing = W_unit @ F[p] >= min_cosine
        absorbing[main[i]] = False
        if rows_child.size:
            block = Z[rows_child]
            main_act = block[:, [main[i]]].toarray().ravel()
            others = np.asarray(block @ np.where(absorbing, along, 0.0)).ravel()
            total = others + main_act * along[main[i]]
            silent = main_act == 0
            figures[0, i] = np.mean(silent & (others >= compensation * present[rows_child]))
            carried = total > 0
            if carried.any():
                figures[1, i] = np.mean(np.clip(others[carried] / total[carried], 0.0, 1.0))
        if rows_alone.size:
            figures[2, i] = np.mean(Z[rows_alone][:, [main[i]]].toarray().ravel() == 0)
    return Absorption(
        parents=roots,
        main_units=main.astype(np.int64),
        main_cosine=cosine[np.arange(roots.size), main],
        full_absorption=figures[0],
        absorption_fraction=figures[1],
        miss_alone=figures[2],
    )
