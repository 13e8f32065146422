"""Compare two SAEs trained on the same data: which units are shared, split, merged or new.

`compare_saes` matches units by decoder cosine (Hungarian and nearest, see `matching`),
measures how often matched units fire on the same samples, and sorts every unit of both
SAEs into one of four kinds, read as "going from A to B":

- ``"split"``: a unit of A that two or more units of B take as their nearest unit of A with
  cosine >= threshold (A's unit became several in B); on B's side, each of those units;
- ``"merge"``: a unit of B that two or more units of A take as their nearest unit of B with
  cosine >= threshold (several units of A became one); on A's side, each of those units;
- ``"shared"``: any other unit whose nearest unit on the other side has cosine >= threshold
  (one to one);
- ``"new"``: a unit with no unit above the threshold on the other side (on B's side: a unit
  A lacks; on A's side: a unit B lost).

Split is tested first, then merge: a unit of A that splits and whose own nearest unit of B
also absorbs another unit of A is reported as split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sae_widgets.analysis.checks import check_finite, check_index, check_positive_int, numpy_of
from sae_widgets.analysis.codes import CodeStore
from sae_widgets.analysis.matching import (
    CANDIDATES,
    MAX_DENSE,
    Assignment,
    NearestMatches,
    as_decoder,
    check_threshold,
    hungarian_matches,
    nearest_matches,
)

__all__ = ["KINDS", "SAEComparison", "UnitMatches", "classify_units", "compare_saes"]

KINDS = ("shared", "split", "merge", "new")
"""The kinds of unit, in the order summaries list them."""

_SIDES = ("a", "b")


def _readonly(array: NDArray[Any]) -> NDArray[Any]:
    array.flags.writeable = False
    return array


def firing_counts(codes: Any, n_units: int, name: str) -> tuple[NDArray[np.int64], int]:
    """(n_units,) number of samples each unit fires on (non-zero), and the number of samples.

    `codes` is a `CodeStore`, a scipy sparse matrix or a dense (n_samples, n_units) array.
    """
    if isinstance(codes, CodeStore):
        counts, n_samples, width = codes.counts, codes.n_samples, codes.n_units
    elif sp.issparse(codes):
        if codes.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_units); got shape {codes.shape}")
        n_samples, width = codes.shape
        check_finite(codes.data, name)  # NaN != 0: a unit of NaNs "fired everywhere"
        counts = np.asarray((codes != 0).sum(axis=0)).ravel()
    else:
        array = np.asarray(numpy_of(codes, name))
        if array.ndim != 2 or not (
            np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
        ):
            raise ValueError(
                f"{name} must be a 2-D (n_samples, n_units) array of activations, a sparse "
                f"matrix or a CodeStore; got shape {array.shape} and dtype {array.dtype}"
            )
        n_samples, width = array.shape
        check_finite(array, name)
        counts = np.count_nonzero(array, axis=0)
    if width != n_units:
        raise ValueError(f"{name} must have one column per unit ({n_units}); got {width}")
    if n_samples < 1:
        raise ValueError(f"{name} must hold at least one sample; got 0 rows")
    return np.asarray(counts, dtype=np.int64), int(n_samples)


def classify_units(
    nearest_a: NDArray[np.int64],
    cos_a: NDArray[np.float32],
    nearest_b: NDArray[np.int64],
    cos_b: NDArray[np.float32],
    threshold: float,
) -> tuple[NDArray[np.str_], NDArray[np.str_]]:
    """Kinds (see `KINDS`) of the units of A and of B from each unit's nearest unit.

    nearest_a[i]: the nearest unit of B to unit i of A, cos_a[i] its cosine; nearest_b, cos_b
    the same from B's side.
    """
    n_a, n_b = len(nearest_a), len(nearest_b)
    strong_a, strong_b = cos_a >= threshold, cos_b >= threshold
    children = np.bincount(nearest_b[strong_b], minlength=n_a)  # B units pointing at A unit
    parents = np.bincount(nearest_a[strong_a], minlength=n_b)  # A units pointing at B unit
    kind_a = np.where(strong_a, "shared", "new").astype("<U6")
    kind_a[strong_a & (parents[nearest_a] >= 2)] = "merge"
    kind_a[children >= 2] = "split"
    kind_b = np.where(strong_b, "shared", "new").astype("<U6")
    kind_b[strong_b & (children[nearest_b] >= 2)] = "split"
    kind_b[parents >= 2] = "merge"
    return kind_a, kind_b


@dataclass(frozen=True)
class UnitMatches:
    """One unit's best matches on the other side of a comparison, best first."""

    unit: int
    side: str
    """"a" when `unit` is a unit of A (its matches are units of B), else "b"."""
    kind: str
    units: NDArray[np.int64]
    cosines: NDArray[np.float32]
    hungarian: int
    """The unit the Hungarian assignment pairs it with (-1: none)."""


@dataclass(frozen=True)
class SAEComparison:
    """Everything `compare_saes` finds; arrays are read-only.

    Units of A are indexed by i, units of B by j. Frequencies are None when no codes were
    given (then `log2_ratio` is None too).
    """

    n_units_a: int
    n_units_b: int
    threshold: float
    absolute: bool
    nearest: NearestMatches
    """Each unit's best few matches on the other side (decoder cosine)."""
    assignment: Assignment
    """The one-to-one Hungarian matching."""
    kind_a: NDArray[np.str_]
    """(n_units_a,) kind of each unit of A (one of `KINDS`)."""
    kind_b: NDArray[np.str_]
    frequency_a: NDArray[np.float64] | None = None
    """(n_units_a,) fraction of the samples on which each unit of A fires."""
    frequency_b: NDArray[np.float64] | None = None
    log2_ratio: NDArray[np.float64] | None = None
    """(n_units_a,) log2 of (firings of unit i + 0.5) / (firings of its Hungarian partner
    + 0.5) over the same samples; NaN for an unmatched unit. +1: A's unit fires twice as
    often (what a unit split in two halves looks like)."""
    n_samples: int | None = None

    def counts(self, side: str = "a") -> dict[str, int]:
        """Number of units of each kind on one side ("a" or "b"), in `KINDS` order."""
        kinds = self.kind_a if _check_side(side) == "a" else self.kind_b
        return {kind: int(np.count_nonzero(kinds == kind)) for kind in KINDS}

    def summary(self) -> str:
        """One line: shared pairs, units of A that split, units of B that merge, new in B."""
        a, b = self.counts("a"), self.counts("b")
        line = f"{a['shared']} shared, {a['split']} split, {b['merge']} merged, {b['new']} new"
        return f"{line} (A units without a match: {a['new']})" if a["new"] else line

    def matches(self, unit: int, side: str = "a") -> UnitMatches:
        """The best matches on the other side of `unit` (a unit of A, or of B if side="b")."""
        side = _check_side(side)
        if side == "a":
            unit = check_index(unit, self.n_units_a, "unit")
            units, cosines = self.nearest.a_to_b[unit], self.nearest.cos_a_to_b[unit]
            kind, partner = self.kind_a[unit], self.assignment.b_of_a[unit]
        else:
            unit = check_index(unit, self.n_units_b, "unit")
            units, cosines = self.nearest.b_to_a[unit], self.nearest.cos_b_to_a[unit]
            kind, partner = self.kind_b[unit], self.assignment.a_of_b[unit]
        return UnitMatches(
            unit=unit,
            side=side,
            kind=str(kind),
            units=units,
            cosines=cosines,
            hungarian=int(partner),
        )


def _check_side(side: Any) -> str:
    if side not in _SIDES:
        raise ValueError(f"side must be 'a' or 'b'; got {side!r}")
    return str(side)


def compare_saes(
    decoder_a: Any,
    decoder_b: Any,
    codes_a: Any = None,
    codes_b: Any = None,
    *,
    threshold: float = 0.7,
    n_matches: int = 5,
    absolute: bool = False,
    max_dense: int = MAX_DENSE,
) -> SAEComparison:
    """Match the units of SAE A to those of SAE B and classify them (see the module doc).

    Parameters
    ----------
    decoder_a, decoder_b:
        (n_units, d) decoder rows of each SAE (arrays, tensors, or fitted SAEs whose
        ``components_`` are used), on one input space.
    codes_a, codes_b:
        Optional activations of each SAE on the same samples (a `CodeStore`, a scipy sparse
        or a dense (n_samples, n_units) matrix) for firing frequencies; both or neither.
    threshold:
        Cosine at or above which two units count as the same direction.
    n_matches:
        How many best matches per unit to keep.
    absolute:
        Compare |cosine| (a direction and its negation match). Off by default: SAE
        activations are non-negative, so a unit and its negation mean opposite things.
    max_dense:
        Largest n_a * n_b solved by the exact dense Hungarian algorithm (see
        `hungarian_matches`).
    """
    a = as_decoder(decoder_a, "decoder_a")
    b = as_decoder(decoder_b, "decoder_b")
    threshold = check_threshold(threshold)
    n_matches = check_positive_int(n_matches, "n_matches")
    if (codes_a is None) != (codes_b is None):
        missing = "codes_b" if codes_b is None else "codes_a"
        raise ValueError(f"{missing} is missing: give the codes of both SAEs or of neither")
    # The sparse Hungarian path needs CANDIDATES matches per unit: find them in one pass.
    dense = len(a) * len(b) <= check_positive_int(max_dense, "max_dense")
    wanted = n_matches if dense else max(n_matches, CANDIDATES)
    found = nearest_matches(a, b, wanted, absolute=absolute)
    assignment = hungarian_matches(
        a, b, absolute=absolute, max_dense=max_dense, candidates=CANDIDATES, nearest=found
    )
    nearest = found.head(n_matches)
    kind_a, kind_b = classify_units(
        nearest.a_to_b[:, 0], nearest.cos_a_to_b[:, 0],
        nearest.b_to_a[:, 0], nearest.cos_b_to_a[:, 0],
        threshold,
    )  # fmt: skip
    extra: dict[str, Any] = {}
    if codes_a is not None:
        counts_a, n_samples = firing_counts(codes_a, len(a), "codes_a")
        counts_b, n_samples_b = firing_counts(codes_b, len(b), "codes_b")
        if n_samples_b != n_samples:
            raise ValueError(
                f"codes_b must cover the same samples as codes_a ({n_samples}); got "
                f"{n_samples_b} rows"
            )
        partner = assignment.b_of_a
        ratio = np.full(len(a), np.nan)
        matched = partner >= 0
        ratio[matched] = np.log2((counts_a[matched] + 0.5) / (counts_b[partner[matched]] + 0.5))
        extra = {
            "frequency_a": _readonly(counts_a / n_samples),
            "frequency_b": _readonly(counts_b / n_samples),
            "log2_ratio": _readonly(ratio),
            "n_samples": n_samples,
        }
    return SAEComparison(
        n_units_a=len(a),
        n_units_b=len(b),
        threshold=threshold,
        absolute=bool(absolute),
        nearest=nearest,
        assignment=assignment,
        kind_a=_readonly(kind_a),
        kind_b=_readonly(kind_b),
        **extra,
    )
