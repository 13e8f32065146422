"""What an Explorer answers about samples: which a scatter draws, which a rectangle or a
lasso holds, the units enriched in a set of them, the heatmap of a set, and the selection as a
Dataset or a DataFrame.

A mixin of `Explorer` (it reads the Explorer's codes, projections and Selection); kept apart
so each module holds one concept. Every answer about "the selection" reads the Selection's
kept array (`Selection.sample_array`), never its list: a 100k-sample selection is not
converted again by every view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from sae_widgets.analysis import (
    Enrichment,
    HeatmapData,
    default_heatmap_rows,
    default_heatmap_units,
    display_subset,
    enrichment,
    heatmap_matrix,
    samples_in_rect,
)
from sae_widgets.analysis.checks import check_indices, check_positive_int, sorted_unique
from sae_widgets.analysis.selection import samples_in_polygon, y_order

if TYPE_CHECKING:  # pragma: no cover
    from sae_widgets.analysis import CodeStore, Projection
    from sae_widgets.data.dataset import Dataset
    from sae_widgets.explore.selection import Selection

__all__ = ["SelectionQueries"]


class SelectionQueries:
    """Sample-set answers of `Explorer` (see the module docstring)."""

    if TYPE_CHECKING:  # provided by Explorer
        selection: Selection
        dataset: Dataset
        n_samples: int
        n_units: int
        seed: int
        default_projection: str
        _display: dict[tuple[str, int], NDArray[np.int64]]
        _by_y: dict[str, tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]]
        _last_enrichment: tuple[tuple[int, int, bytes], NDArray[np.int64], Enrichment] | None

        @property
        def codes(self) -> CodeStore: ...

        def projection(self, source: str | None = None) -> Projection: ...

    def display_samples(
        self, max_points: int = 20_000, source: str | None = None
    ) -> NDArray[np.int64]:
        """Sorted indices of the (at most `max_points`) samples a scatter of the projection
        should draw; a brush still selects over all samples (`samples_in_rect`). Cached: the
        same subset every call, so a view sends its points once and then only colours."""
        source = self.default_projection if source is None else source
        max_points = check_positive_int(max_points, "max_points")
        self.projection(source)  # checks source (a str, not an unhashable array)
        key = (source, max_points)
        cached = self._display.get(key)
        if cached is None:
            cached = display_subset(self.projection(source).coords, max_points, seed=self.seed)
            self._display[key] = cached
        return cached

    def samples_in_rect(
        self, x_range: Any, y_range: Any, source: str | None = None
    ) -> NDArray[np.int64]:
        """Samples whose projected point lies in the rectangle (bounds included, any order)."""
        return samples_in_rect(self.projection(source).coords, x_range, y_range)

    def samples_in_polygon(self, polygon: Any, source: str | None = None) -> NDArray[np.int64]:
        """Samples whose projected point lies inside `polygon` ((m, 2) vertices in the
        projection's coordinates: a lasso's outline), over all samples, drawn or not."""
        source = self.default_projection if source is None else source
        self.projection(source)  # checks source
        by_y = self._by_y.get(source)
        if by_y is None:
            by_y = self._by_y[source] = y_order(self.projection(source).coords)
        return samples_in_polygon(self.projection(source).coords, polygon, by_y)

    def _samples_or_selection(self, samples: Any) -> NDArray[np.int64]:
        """Sorted, distinct sample indices: `samples`, or the selection's when None (the
        selection's own list is recognised and read as its kept array)."""
        if samples is None or samples is self.selection.samples:
            return self.selection.sample_array
        return sorted_unique(check_indices(samples, self.n_samples, "samples"))

    def enrichment(self, samples: Any = None, top: int | None = 20) -> Enrichment:
        """Units most enriched in `samples` (default: the current selection's samples).

        The full ranking of the last set asked about is kept, so the list view and the heatmap
        columns of one brush share one computation.
        """
        if top is not None:
            top = check_positive_int(top, "top")
        chosen = self._samples_or_selection(samples)
        last = self._last_enrichment
        # The Selection's kept array is read-only: the same object is the same set (every
        # view of one brush asks with it), so the 800 kB key of a 100k set is not rebuilt.
        if last is None or not (last[1] is chosen and not chosen.flags.writeable):
            key = (self.codes.n_samples, len(chosen), chosen.tobytes())
            if last is None or last[0] != key:
                last = (key, chosen, enrichment(self.codes, chosen, top=None))
            else:
                last = (key, chosen, last[2])
            self._last_enrichment = last
        ranking = last[2]
        return ranking if top is None else ranking.head(top)

    def heatmap(
        self,
        rows: Any = None,
        units: Any = None,
        *,
        max_rows: int = 200,
        max_units: int = 64,
    ) -> HeatmapData:
        """Activations of some samples (rows) and units (columns).

        rows: default: the selection (a random `max_rows` of it if larger), or a
        label-stratified sample of `max_rows` when nothing is selected. units: default: the
        `max_units` units most enriched in the rows' samples when rows or a selection are given,
        else the most frequent units.
        """
        max_rows = check_positive_int(max_rows, "max_rows")
        max_units = check_positive_int(max_units, "max_units")
        labels = self.dataset.labels
        if rows is None:
            picked: Any = self._samples_or_selection(None)
            row_array = default_heatmap_rows(
                self.n_samples, picked, labels, cap=max_rows, seed=self.seed
            )
        else:
            picked = row_array = check_indices(rows, self.n_samples, "rows")
        if units is None:
            ranked = self.enrichment(picked, top=None) if len(picked) else None
            unit_array = default_heatmap_units(self.codes, picked, cap=max_units, ranked=ranked)
        else:
            unit_array = check_indices(units, self.n_units, "units")
        return HeatmapData(
            matrix=heatmap_matrix(self.codes, row_array, unit_array),
            rows=row_array,
            units=unit_array,
            row_labels=None if labels is None else labels[row_array],
        )

    def selection_to_dataset(self) -> Dataset:
        """The selected samples as a Dataset of their own (labels, images, ... carried over)."""
        return self.dataset[self.selection.sample_array]

    def selection_to_dataframe(self) -> Any:
        """The selected samples as a pandas DataFrame (pandas is optional): one row per
        sample with its index, label (when known), number of active units, and its activation
        of the focused unit (when one is focused)."""
        try:
            import pandas as pd
        except ImportError as error:  # pragma: no cover - pandas ships with bqplot
            raise ImportError("selection_to_dataframe needs pandas: pip install pandas") from error
        samples = self.selection.sample_array
        columns: dict[str, Any] = {"sample": samples}
        labels = self.dataset.labels
        if labels is not None:
            names = self.dataset.label_names
            picked = labels[samples]
            columns["label"] = [names[i] if names and i >= 0 else int(i) for i in picked]
        columns["active_units"] = np.diff(self.codes.csr.indptr)[samples]
        unit = self.selection.unit
        if unit is not None:
            activation = np.zeros(self.n_samples, dtype=np.float32)
            rows, values = self.codes.unit_samples(unit)
            activation[rows] = values
            columns[f"unit_{unit}"] = activation[samples]
        return pd.DataFrame(columns)
