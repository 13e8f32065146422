"""`Comparison`: two SAEs over one dataset, their units matched, and the questions the
compare view asks (the pairs table, a unit's matches, a unit's top samples on either side).

Focus: each side keeps its own `Selection` (its Explorer's). ``comparison.selection.unit``
is the focused unit of A, ``comparison.selection_b.unit`` the focused unit of B; views set
and follow those two traits only, so `ex_a.dashboard()` and `ex_b.dashboard()` stay linked to
a compare view of the same Explorers. Views never talk to each other.

Refresh: the matching is cached for the two Explorers' current ``selection.revision``s, so
`Explorer.refresh` on either side (after training that SAE further or refitting it) makes
the next answer a new matching; a compare view follows both revisions and redraws, like
every other view. `Comparison.refresh` refreshes both sides at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sae_widgets.analysis import SAEComparison, UnitMatches, compare_saes
from sae_widgets.analysis.checks import check_index, check_positive_int
from sae_widgets.analysis.matching import check_threshold
from sae_widgets.analysis.summary import top_entries
from sae_widgets.explore.explorer import Explorer, _check_fitted
from sae_widgets.explore.selection import Selection
from sae_widgets.wording import counted

__all__ = ["Comparison", "PairTable", "compare"]

_SIDES = ("a", "b")


@dataclass(frozen=True)
class PairTable:
    """The Hungarian pairs (one row per matched unit of A), for the scatter and for tables.

    ``kind`` is the kind of the unit of A (see `sae_widgets.analysis.compare`); ``log2_ratio``
    is log2 of how much more often the unit of A fires than its partner (0.5 pseudo-counts).
    """

    unit_a: NDArray[np.int64]
    unit_b: NDArray[np.int64]
    cosine: NDArray[np.float32]
    log2_ratio: NDArray[np.float64]
    frequency_a: NDArray[np.float64]
    frequency_b: NDArray[np.float64]
    kind: NDArray[np.str_]

    def __len__(self) -> int:
        return len(self.unit_a)

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per pair (e.g. for ``pandas.DataFrame(table.to_records())``)."""
        names = ("unit_a", "unit_b", "cosine", "log2_ratio", "frequency_a", "frequency_b", "kind")
        columns = [getattr(self, name).tolist() for name in names]
        return [dict(zip(names, row)) for row in zip(*columns)]


def _same_data(ex_a: Explorer, ex_b: Explorer) -> None:
    x_a, x_b = ex_a.dataset.X, ex_b.dataset.X
    if ex_a.dataset is ex_b.dataset:
        return
    if x_a.shape != x_b.shape or not np.array_equal(x_a, x_b):
        raise ValueError(
            f"b must explore the same samples as a (X of shape {x_a.shape}); got X of shape "
            f"{x_b.shape}{'' if x_a.shape != x_b.shape else ' with other values'}"
        )


def _same_width(width_a: int, width_b: int) -> None:
    """Two SAEs of different input widths cannot have read the same samples."""
    if width_a != width_b:
        raise ValueError(
            f"a and b must be SAEs of the same input width to be compared on the same samples; "
            f"a reads vectors of width {width_a}, b of width {width_b}"
        )


class Comparison:
    """Two SAEs on the same samples, their units matched by decoder cosine.

    Build it with `compare` (from two Explorers, or from two fitted SAEs and a dataset).

    Parameters
    ----------
    ex_a, ex_b:
        Explorers of SAE A and SAE B over the same samples.
    threshold, n_matches, absolute:
        See `sae_widgets.analysis.compare_saes`.
    names:
        How views call the two SAEs (default "A" and "B").

    Attributes
    ----------
    selection:
        ``ex_a.selection``: its ``unit`` is the focused unit of A.
    selection_b:
        ``ex_b.selection``: its ``unit`` is the focused unit of B.
    """

    def __init__(
        self,
        ex_a: Explorer,
        ex_b: Explorer,
        *,
        threshold: float = 0.7,
        n_matches: int = 5,
        absolute: bool = False,
        names: tuple[str, str] = ("A", "B"),
    ) -> None:
        for name, ex in (("a", ex_a), ("b", ex_b)):
            if not isinstance(ex, Explorer):
                raise TypeError(f"{name} must be an sae_widgets.Explorer; got {type(ex).__name__}")
        if ex_a is ex_b:
            raise ValueError("b must be another Explorer than a (give each SAE its own)")
        _same_width(int(ex_a.dataset.X.shape[1]), int(ex_b.dataset.X.shape[1]))
        _same_data(ex_a, ex_b)
        if not (isinstance(names, (tuple, list)) and len(names) == 2):
            raise TypeError(f"names must be a pair of strings; got {names!r}")
        self.ex_a, self.ex_b = ex_a, ex_b
        self.names = (str(names[0]), str(names[1]))
        self.options: dict[str, Any] = {
            "threshold": check_threshold(threshold),
            "n_matches": check_positive_int(n_matches, "n_matches"),
            "absolute": _check_bool(absolute, "absolute"),
        }
        self._result: SAEComparison | None = None
        self._revisions: tuple[int, int] = (-1, -1)  # of the Explorers, for `_result`

    @property
    def selection(self) -> Selection:
        """The Selection whose ``unit`` is the focused unit of A."""
        return self.ex_a.selection

    @property
    def selection_b(self) -> Selection:
        """The Selection whose ``unit`` is the focused unit of B."""
        return self.ex_b.selection

    def explorer(self, side: str) -> Explorer:
        """The Explorer of side "a" or "b"."""
        return self.ex_a if _check_side(side) == "a" else self.ex_b

    def selection_of(self, side: str) -> Selection:
        """The Selection holding the focused unit of side "a" or "b"."""
        return self.explorer(side).selection

    @property
    def revisions(self) -> tuple[int, int]:
        """The two Explorers' ``selection.revision`` (each bumped by its `Explorer.refresh`)."""
        return (int(self.ex_a.selection.revision), int(self.ex_b.selection.revision))

    @property
    def result(self) -> SAEComparison:
        """The matching and the unit kinds (computed on first access, then cached until
        either Explorer is refreshed)."""
        revisions = self.revisions
        if self._result is None or self._revisions != revisions:
            self._result = compare_saes(
                self.ex_a.decoder_directions,
                self.ex_b.decoder_directions,
                self.ex_a.codes,
                self.ex_b.codes,
                **self.options,
            )
            self._revisions = revisions
        return self._result

    def refresh(self) -> None:
        """Forget the matching and both Explorers' caches (after training either SAE more).

        Views hear both refreshes only once both are done (each side's notifications are
        held until then), so none draws B's stale codes against A's new ones."""
        with (
            self.ex_a.selection.hold_trait_notifications(),
            self.ex_b.selection.hold_trait_notifications(),
        ):
            self.ex_a.refresh()
            self.ex_b.refresh()
            self._result = None

    # ---- answers for the views ---------------------------------------------------------

    def pairs(self) -> PairTable:
        """The Hungarian pairs: cosine, firing frequencies and their log2 ratio, kind of A."""
        result = self.result
        unit_a, unit_b, cosine = result.assignment.pairs
        assert result.frequency_a is not None and result.frequency_b is not None
        assert result.log2_ratio is not None
        return PairTable(
            unit_a=unit_a,
            unit_b=unit_b,
            cosine=cosine,
            log2_ratio=result.log2_ratio[unit_a],
            frequency_a=result.frequency_a[unit_a],
            frequency_b=result.frequency_b[unit_b],
            kind=result.kind_a[unit_a],
        )

    def matches(self, unit: int, side: str = "a", n: int | None = None) -> UnitMatches:
        """The best matches of `unit` (of side `side`) on the other side, best first."""
        found = self.result.matches(unit, _check_side(side))
        if n is None:
            return found
        n = check_positive_int(n, "n")
        return UnitMatches(
            unit=found.unit,
            side=found.side,
            kind=found.kind,
            units=found.units[:n],
            cosines=found.cosines[:n],
            hungarian=found.hungarian,
        )

    def frequency(self, unit: int, side: str = "a") -> float:
        """Fraction of the samples on which `unit` of that side fires."""
        ex = self.explorer(side)
        unit = check_index(unit, ex.n_units, "unit")
        return float(ex.codes.frequency[unit])

    def top_samples(
        self, unit: int, side: str = "a", n: int = 8
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The `n` samples on which `unit` of that side is most active, strongest first."""
        ex = self.explorer(side)
        unit = check_index(unit, ex.n_units, "unit")
        n = check_positive_int(n, "n")
        samples, values = ex.codes.unit_samples(unit)
        return top_entries(samples, values, n)

    def summary(self) -> str:
        """One line: "N shared, N split, N merged, N new" (see `SAEComparison.summary`)."""
        return self.result.summary()

    def __repr__(self) -> str:
        state = self.summary() if self._result is not None else "not matched yet"
        a, b = self.names
        return (
            f"Comparison({a}: {counted(self.ex_a.n_units, 'unit')}, "
            f"{b}: {counted(self.ex_b.n_units, 'unit')}, {state})"
        )


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _check_side(side: Any) -> str:
    if not isinstance(side, str) or side not in _SIDES:
        raise ValueError(f"side must be 'a' or 'b'; got {side!r}")
    return str(side)


def compare(a: Any, b: Any, dataset: Any = None, **options: Any) -> Comparison:
    """Compare two SAEs on the same samples.

    ``compare(ex_a, ex_b)`` with two Explorers (their Selections stay theirs: the compare
    view focuses units of A in ``ex_a.selection`` and of B in ``ex_b.selection``), or
    ``compare(sae_a, sae_b, dataset)`` with two fitted SAEs and one dataset (an Explorer is
    made for each). `options` go to `Comparison` (threshold, n_matches, absolute, names).
    """
    if isinstance(a, Explorer) and isinstance(b, Explorer):
        if dataset is not None:
            raise TypeError("dataset must be left out when a and b are Explorers")
        return Comparison(a, b, **options)
    if isinstance(a, Explorer) or isinstance(b, Explorer):
        raise TypeError("a and b must both be Explorers, or both fitted SAEs with a dataset")
    if dataset is None:
        raise TypeError("dataset is missing: compare(sae_a, sae_b, dataset) needs the samples")
    widths = []
    for name, sae in (("a", a), ("b", b)):
        try:  # say which of the two is wrong before the data are checked against either
            widths.append(_check_fitted(sae))
        except (TypeError, ValueError) as err:  # NotFittedError is a ValueError
            message = str(err).replace("sae must", f"{name} must", 1)
            raise type(err)(message if message != str(err) else f"{name}: {err}") from None
    _same_width(*widths)
    ex_a = Explorer(a, dataset)
    return Comparison(ex_a, Explorer(b, ex_a.dataset), **options)
