"""Everything one view needs to say what a unit means, computed from its column of codes.

Cost is proportional to the number of samples the unit fires on (plus one decoder matvec),
never to the dataset size times the number of units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sae_widgets.analysis.checks import (
    check_finite,
    check_index,
    check_positive_int,
    check_seed,
    numpy_of,
)
from sae_widgets.analysis.codes import CodeStore, check_store
from sae_widgets.label_codes import encode_labels
from sae_widgets.memory import check_memory

__all__ = [
    "IntervalSamples",
    "LabelIndex",
    "UnitSummary",
    "check_labels",
    "normalize_rows",
    "prepare_labels",
    "top_entries",
    "unit_summary",
]


@dataclass(frozen=True)
class IntervalSamples:
    """Samples drawn at random from one activation interval ``(low, high]`` of a unit."""

    low: float
    high: float
    count: int
    """How many samples of the dataset fall in the interval."""
    samples: NDArray[np.int64]
    """The drawn samples, strongest activation first."""
    values: NDArray[np.float32]


@dataclass(frozen=True)
class UnitSummary:
    """What a unit does over a dataset. Activations counted are the non-zero ones."""

    unit: int
    count: int
    """Number of samples on which the unit fires (non-zero activation)."""
    frequency: float
    """count / n_samples."""
    mean_activation: float
    """Mean activation over the samples where it fires (0 if it never fires)."""
    max_activation: float
    histogram_counts: NDArray[np.int64]
    """(n_bins,) counts of the non-zero activations, bins over [min(0, lowest), max]."""
    histogram_edges: NDArray[np.float64]
    """(n_bins + 1,) bin edges."""
    top_samples: NDArray[np.int64]
    """Up to top_n samples, strongest activation first (ties: lower sample index first)."""
    top_values: NDArray[np.float32]
    intervals: tuple[IntervalSamples, ...]
    """Samples drawn from equal-width activation intervals, lowest interval first."""
    nearest_units: NDArray[np.int64]
    """Units whose decoder directions have the highest cosine with this one's (self excluded)."""
    nearest_cosines: NDArray[np.float32]
    cofiring_units: NDArray[np.int64]
    """Units that fire on the same samples, ranked by Jaccard index (self excluded).

    Jaccard = |both fire| / |either fires|, so a unit that fires everywhere scores low unless
    this unit also does: unlike raw co-occurrence counts, it is not dominated by dense units.
    """
    cofiring_jaccard: NDArray[np.float32]
    cofiring_counts: NDArray[np.int64]
    """Number of samples on which both fire (estimated for very busy units, see
    `unit_summary`'s max_cofiring_samples)."""
    label_counts: NDArray[np.int64] | None = None
    """(n_labels,) labels of the samples where the unit fires (unlabelled ones, -1, left
    out); None without labels. The shares below are over the labelled firing samples."""
    label_names: tuple[str, ...] | None = None
    top_label: int | None = None
    """Most frequent label among the firing samples (None without labels or firing)."""
    top_label_precision: float = float("nan")
    """Share of the firing samples that carry top_label."""
    top_label_recall: float = float("nan")
    """Share of the samples carrying top_label on which the unit fires."""
    label_selectivity: float = float("nan")
    """1 - entropy(label distribution among firing samples) / log(n_labels): 1 when the unit
    fires on one label only, 0 when its firing samples spread evenly over all labels."""


def normalize_rows(matrix: Any) -> NDArray[np.float32]:
    """Rows scaled to unit L2 norm (all-zero rows stay zero), as float32."""
    given = np.asarray(numpy_of(matrix, "decoder"))
    if given.dtype.kind not in "biuf":  # complex kept its real part, strings were parsed
        raise TypeError(f"decoder must hold real numbers; got dtype {given.dtype}")
    rows = given.astype(np.float32, copy=False)
    if rows.ndim != 2:
        raise ValueError(f"decoder must be a 2-D (n_units, d) matrix; got shape {rows.shape}")
    check_finite(rows, "decoder", "must hold finite values; got NaN or infinity")
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


def check_labels(labels: Any, n_samples: int) -> NDArray[np.int64]:
    """Labels as an int64 array of length `n_samples` (-1 = unlabelled), or raise naming it.
    Labels that are names (strings, bools, ...) are numbered in sorted order, as
    `sae_widgets.Dataset` numbers them (`label_codes.encode_labels`)."""
    return _encoded(labels, n_samples, None)[0]


def _encoded(
    labels: Any, n_samples: int, label_names: Any
) -> tuple[NDArray[np.int64], list[str] | None]:
    shape = getattr(labels, "shape", None)
    if shape is not None and tuple(shape) != (n_samples,):
        raise ValueError(f"labels must have shape ({n_samples},); got {tuple(shape)}")
    try:
        return encode_labels(labels, n_samples, label_names)
    except ValueError as err:
        if "one entry per sample" in str(err):
            raise ValueError(
                f"labels must have shape ({n_samples},); got {np.shape(labels)}"
            ) from None
        raise


def top_entries(
    keys: NDArray[Any], scores: NDArray[Any], n: int
) -> tuple[NDArray[np.int64], NDArray[Any]]:
    """The n entries with the highest score, highest first; ties go to the lower key.

    Partitions first so that picking 16 of 50,000 does not sort all 50,000.
    """
    if n <= 0:  # np.partition cannot take the 0 largest
        return keys[:0].astype(np.int64), scores[:0]
    if len(scores) > n:
        threshold = np.partition(scores, len(scores) - n)[len(scores) - n]
        candidates = np.flatnonzero(scores >= threshold)  # keeps every tie at the threshold
    else:
        candidates = np.arange(len(scores))
    order = candidates[np.lexsort((keys[candidates], -scores[candidates]))][:n]
    return keys[order].astype(np.int64), scores[order]


def _intervals(
    samples: NDArray[np.int64],
    values: NDArray[np.float32],
    low: float,
    high: float,
    n_intervals: int,
    per_interval: int,
    rng: np.random.Generator,
) -> tuple[IntervalSamples, ...]:
    edges = np.linspace(low, high, n_intervals + 1)
    # Interval i holds edges[i] < v <= edges[i + 1] (the lowest one also holds v == low).
    which = np.searchsorted(edges[1:-1], values, side="left")
    sizes = np.bincount(which, minlength=n_intervals)
    # members of every interval from one sort: a scan per interval cost O(intervals x count)
    by_interval = np.argsort(which, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    drawn = []
    nothing = np.zeros(0, dtype=np.int64)
    for i in range(n_intervals):
        members = by_interval[starts[i] : starts[i + 1]]
        pick = nothing  # an empty interval draws nothing (rng.choice of none draws no number)
        if len(members) and per_interval:
            pick = rng.choice(members, size=min(per_interval, len(members)), replace=False)
            pick = pick[np.lexsort((samples[pick], -values[pick]))]
        drawn.append(
            IntervalSamples(
                low=float(edges[i]),
                high=float(edges[i + 1]),
                count=len(members),
                samples=samples[pick],
                values=values[pick],
            )
        )
    return tuple(drawn)


@dataclass(frozen=True)
class LabelIndex:
    """Checked labels and what every unit summary reads off them, computed once per dataset
    (`prepare_labels`): a summary then costs O(samples the unit fires on), not O(dataset)."""

    labels: NDArray[np.int64]
    """(n_samples,) class per sample, -1 for an unlabelled one."""
    names: tuple[str, ...] | None
    totals: NDArray[np.int64]
    """(n_labels,) number of samples carrying each label."""

    @property
    def n_labels(self) -> int:
        return len(self.totals)


def prepare_labels(labels: Any, n_samples: int, label_names: Any = None) -> LabelIndex:
    """Check `labels` (and `label_names`, which must name every label) once, for many
    `unit_summary` calls (pass the result as their `labels`)."""
    array, given = _encoded(labels, n_samples, label_names)
    labelled = array[array >= 0]
    n_labels = int(labelled.max()) + 1 if len(labelled) else 0
    names = None if given is None else tuple(given)
    if names is not None:
        if len(names) < n_labels:
            raise ValueError(
                f"label_names must name every label 0..{n_labels - 1}; got {len(names)} names"
            )
        n_labels = len(names)
    totals = np.bincount(labelled, minlength=n_labels).astype(np.int64)
    return LabelIndex(labels=array, names=names, totals=totals)


def _label_fields(samples: NDArray[np.int64], index: LabelIndex) -> dict[str, Any]:
    n_labels = index.n_labels
    fired_labels = index.labels[samples]
    fired_labels = fired_labels[fired_labels >= 0]  # unlabelled samples (-1) carry no class
    counts = np.bincount(fired_labels, minlength=n_labels).astype(np.int64)
    fields: dict[str, Any] = {"label_counts": counts, "label_names": index.names}
    if len(fired_labels) == 0:
        return fields
    top = int(np.argmax(counts))
    share = counts / len(fired_labels)
    present = share[share > 0]
    entropy = float(-(present * np.log(present)).sum())
    fields.update(
        top_label=top,
        top_label_precision=float(share[top]),
        top_label_recall=float(counts[top] / index.totals[top]),
        label_selectivity=1.0 - entropy / float(np.log(n_labels)) if n_labels > 1 else 1.0,
    )
    return fields


def unit_summary(
    store: CodeStore,
    unit: int,
    decoder: Any,
    *,
    labels: Any = None,
    label_names: Any = None,
    top_n: int = 16,
    n_bins: int = 32,
    n_intervals: int = 5,
    per_interval: int = 4,
    n_nearest: int = 8,
    n_cofiring: int = 8,
    decoder_normalized: bool = False,
    max_cofiring_samples: int | None = 8192,
    seed: int = 0,
) -> UnitSummary:
    """Summarise `unit` over the samples of `store`.

    Parameters
    ----------
    store:
        The dataset's unit codes.
    unit:
        Unit index in ``[0, store.n_units)``.
    decoder:
        (n_units, d) decoder directions (``sae.components_``). Pass the rows already scaled to
        unit norm with ``decoder_normalized=True`` to skip re-normalising on every call.
    labels, label_names:
        Optional (n_samples,) int class labels and their names; or, for many calls, the
        `LabelIndex` that `prepare_labels` made of them (then label_names must be None).
    top_n, n_bins, n_intervals, per_interval, n_nearest, n_cofiring:
        Sizes of the lists and histogram returned.
    max_cofiring_samples:
        Co-firing is counted exactly for units firing on at most this many samples; for busier
        units it is estimated from a seeded random subset of this size (None: always exact).
    seed:
        Seeds the interval draws and the co-firing subset (combined with the unit index, so
        each unit's summary is repeatable).
    """
    check_store(store)
    unit = check_index(unit, store.n_units, "unit")
    sizes = dict(top_n=top_n, n_bins=n_bins, n_intervals=n_intervals)
    for name, value in sizes.items():
        check_positive_int(value, name)
    for name, value in dict(
        per_interval=per_interval, n_nearest=n_nearest, n_cofiring=n_cofiring
    ).items():
        check_positive_int(value, name, minimum=0)
    if max_cofiring_samples is not None:
        check_positive_int(max_cofiring_samples, "max_cofiring_samples")
    seed = check_seed(seed)
    # the histogram's arrays and one IntervalSamples per interval (a few hundred bytes each):
    # refused, not numpy's MemoryError (n_bins=10**12) or a loop of 10**9 intervals
    check_memory(16 * n_bins, f"unit_summary(n_bins={n_bins})", "ask for fewer bins")
    check_memory(
        512 * n_intervals, f"unit_summary(n_intervals={n_intervals})", "ask for fewer intervals"
    )
    directions = np.asarray(decoder) if decoder_normalized else normalize_rows(decoder)
    if directions.ndim != 2 or directions.shape[0] != store.n_units:
        raise ValueError(
            f"decoder must have shape ({store.n_units}, d) to match the codes; "
            f"got {directions.shape}"
        )

    samples, values = store.unit_samples(unit)
    count = len(samples)
    high = float(store.max_activation[unit])
    low = min(0.0, float(values.min())) if count else 0.0
    if count:
        hist_counts, hist_edges = np.histogram(values, bins=n_bins, range=(low, max(high, low)))
    else:
        hist_counts, hist_edges = np.zeros(n_bins, dtype=np.int64), np.linspace(0, 1, n_bins + 1)
    top_samples, top_values = top_entries(samples, values, top_n)
    rng = np.random.default_rng([seed, unit])
    intervals = _intervals(samples, values, low, high, n_intervals, per_interval, rng)

    # Nearest units: one matvec against the unit-norm decoder. einsum's own loop, not BLAS:
    # waking BLAS worker threads for a 2048x256 matvec can cost 10+ ms on a busy machine.
    cosines = np.einsum("ud,d->u", directions, directions[unit])
    cosines[unit] = -np.inf
    nearest, nearest_cos = top_entries(
        np.arange(store.n_units), cosines, min(n_nearest, store.n_units - 1)
    )

    # Co-firing: count the units on the rows where this unit fires (on a seeded random subset
    # of those rows for a very busy unit, scaled up: bounded cost, small relative error).
    rows = samples
    if max_cofiring_samples is not None and count > max_cofiring_samples:
        subset_rng = np.random.default_rng([seed, unit, 1])
        rows = subset_rng.choice(samples, size=max_cofiring_samples, replace=False)
    both = np.bincount(store.units_of_rows(rows), minlength=store.n_units)
    if len(rows) < count:
        both = np.rint(both * (count / len(rows))).astype(np.int64)
    both[unit] = 0
    either = count + store.counts - np.minimum(both, store.counts)
    jaccard = np.divide(both, either, out=np.zeros(store.n_units), where=either > 0)
    partners = np.flatnonzero(both)
    cofiring, cofiring_jaccard = top_entries(partners, jaccard[partners], n_cofiring)

    label_fields: dict[str, Any] = {}
    if isinstance(labels, LabelIndex):
        if label_names is not None:
            raise ValueError("label_names must be None when labels is a LabelIndex (it has them)")
        if len(labels.labels) != store.n_samples:
            raise ValueError(
                f"labels must have shape ({store.n_samples},); got {labels.labels.shape}"
            )
        label_fields = _label_fields(samples, labels)
    elif labels is not None:
        label_fields = _label_fields(samples, prepare_labels(labels, store.n_samples, label_names))
    return UnitSummary(
        unit=unit,
        count=count,
        frequency=count / store.n_samples,
        mean_activation=float(store.sums[unit] / count) if count else 0.0,
        max_activation=high,
        histogram_counts=hist_counts.astype(np.int64),
        histogram_edges=hist_edges,
        top_samples=top_samples,
        top_values=top_values.astype(np.float32),
        intervals=intervals,
        nearest_units=nearest,
        nearest_cosines=nearest_cos.astype(np.float32),
        cofiring_units=cofiring,
        cofiring_jaccard=cofiring_jaccard.astype(np.float32),
        cofiring_counts=both[cofiring].astype(np.int64),
        **label_fields,
    )


def encoder_filter(sae: Any, unit: int) -> np.ndarray | None:
    """(d,) the encoder weights of `unit` (what the unit looks for in an input), if known."""
    weights = getattr(getattr(sae, "model_", None), "W_enc", None)
    if weights is None:
        return None
    column = weights[:, unit]
    if hasattr(column, "detach"):
        column = column.detach().cpu().numpy()
    return np.asarray(column, dtype=np.float32)
