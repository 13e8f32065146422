"""Per-unit figures for every unit at once (what a unit table sorts by), vectorised over the
sparse codes instead of one `unit_summary` per unit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sae_widgets.analysis.codes import CodeStore, check_store
from sae_widgets.analysis.summary import check_labels

__all__ = ["UnitStats", "unit_stats"]


@dataclass(frozen=True)
class UnitStats:
    """One entry per unit, indexed by unit."""

    frequency: NDArray[np.float64]
    """Share of the samples on which the unit fires."""
    max_activation: NDArray[np.float32]
    selectivity: NDArray[np.float64]
    """1 - entropy(labels of its firing samples) / log(n_labels), as `UnitSummary`'s
    label_selectivity; NaN without labels or for a unit that never fires."""
    top_label: NDArray[np.int64]
    """Most frequent label among its firing samples; -1 without labels or firing."""


def unit_stats(store: CodeStore, labels: Any = None) -> UnitStats:
    """Frequency, max activation, label selectivity and top label of every unit."""
    check_store(store)
    n_units = store.n_units
    selectivity = np.full(n_units, np.nan)
    top_label = np.full(n_units, -1, dtype=np.int64)
    if labels is not None:
        labels = check_labels(labels, store.n_samples)  # names (strings...) numbered too
        keep = labels >= 0  # unlabelled samples carry no class
        n_labels = int(labels[keep].max()) + 1 if keep.any() else 0
        if n_labels:
            fired = (store.csr[keep] != 0).astype(np.float64)
            one_hot = sp.csr_matrix(
                (np.ones(int(keep.sum())), (labels[keep], np.arange(int(keep.sum())))),
                shape=(n_labels, int(keep.sum())),
            )
            # (n_units, n_labels) kept sparse: dense, it is n_units x the largest label
            counts = sp.csr_matrix((one_hot @ fired).T)
            counts.eliminate_zeros()
            counts.sort_indices()
            rows = np.repeat(np.arange(n_units), np.diff(counts.indptr))
            totals = np.bincount(rows, weights=counts.data, minlength=n_units)
            firing = totals > 0
            share = counts.data / totals[rows]
            entropy = -np.bincount(rows, weights=share * np.log(share), minlength=n_units)
            selectivity[firing] = (
                1.0 - entropy[firing] / np.log(n_labels) if n_labels > 1 else np.ones(firing.sum())
            )
            # the most frequent label of each unit, the lowest label among ties (as argmax)
            order = np.lexsort((counts.indices, -counts.data, rows))
            first = (
                order[np.r_[0, np.flatnonzero(np.diff(rows[order])) + 1]] if len(order) else order
            )
            top_label[rows[first]] = counts.indices[first]
    return UnitStats(
        frequency=np.asarray(store.frequency, dtype=np.float64),
        max_activation=np.asarray(store.max_activation, dtype=np.float32),
        selectivity=selectivity,
        top_label=top_label,
    )
