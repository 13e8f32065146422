"""`Explorer`: one fitted SAE over one dataset, the answers every view asks for, and the
shared `Selection` that links the views.

The Explorer is the only object views hold. It is lazy (constructing it encodes nothing) and
caches what is expensive: the sparse codes of the dataset, the projections, the unit-norm
decoder and the last few unit summaries. All results are numpy arrays or frozen dataclasses
from `sae_widgets.analysis`; no tensors reach the views.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sae_widgets.analysis import (
    CodeStore,
    Enrichment,
    HeatmapData,
    ProbeResult,
    Projection,
    UnitSummary,
    default_heatmap_rows,
    default_heatmap_units,
    display_subset,
    enrichment,
    heatmap_matrix,
    pca_projection,
    probe_attribute,
    samples_in_rect,
    unit_summary,
)
from sae_widgets.analysis.checks import check_index, check_indices, check_positive_int
from sae_widgets.analysis.code_files import encode_to_folder
from sae_widgets.analysis.logits import LogitEffects, logit_effects
from sae_widgets.analysis.prefix import PrefixMetrics, prefix_metrics, prefix_reconstruction
from sae_widgets.analysis.summary import normalize_rows
from sae_widgets.analysis.threads import threads_for_batch
from sae_widgets.data.dataset import Attribute, Dataset
from sae_widgets.explore.history import SelectionHistory
from sae_widgets.explore.selection import Selection
from sae_widgets.explore.steering import Steerer

if TYPE_CHECKING:  # pragma: no cover
    import ipywidgets

__all__ = ["Explorer"]

_SOURCES = ("codes", "inputs")
_SUMMARY_CACHE_SIZE = 64


def _check_fitted(sae: Any) -> int:
    """Raise unless `sae` is a fitted SAE estimator; return its input dimension."""
    needed = ("encode_sparse", "transform", "inverse_transform")
    if not all(callable(getattr(sae, name, None)) for name in needed):
        raise TypeError(
            f"sae must be a sae_widgets.SAE (with encode_sparse, transform, inverse_transform); "
            f"got {type(sae).__name__}"
        )
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(sae)  # NotFittedError (a ValueError) says to call fit first
    n_features = getattr(sae, "n_features_in_", None)
    if n_features is None:
        n_features = int(np.shape(sae.components_)[1])
    return int(n_features)


def _pca_2d(data: Any, source: str, seed: int) -> Projection:
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


class Explorer:
    """Explore the units of a fitted SAE over a dataset.

    Parameters
    ----------
    sae:
        A fitted `sae_widgets.SAE`.
    dataset:
        A `sae_widgets.Dataset` (or an (n, d) array, wrapped into one) whose X has the SAE's
        input dimension.
    projection:
        What the default 2-D view projects: "codes" (PCA of the unit codes) or "inputs".
    chunk_size:
        Samples encoded at a time when building the codes (bounds memory).
    seed:
        Seeds every random choice (interval samples, heatmap rows, PCA start vector).
    model, layer:
        The torch model and the layer whose output the SAE was trained on (optional). With
        them the Explorer can push units through the model (`steerer`) and the dashboard
        adds a `SteeringView`.
    inputs, input_fn:
        A classifier's input for each sample (an (n, ...) array or a Dataset whose X are
        the inputs, in the dataset's order) and how a float batch of them is shaped for the
        model (default: as is).
    tokenizer:
        A language model's tokenizer: steering then shows greedy continuations of a prompt.
    codes_dir:
        A folder to encode the codes into as memory-mapped files (large data, e.g. an
        `ActivationStore` of 10^6 rows); None: in memory.

    Attributes
    ----------
    selection:
        The shared `Selection` (focused unit, selected samples, probe state) all views follow.
    history:
        `SelectionHistory` of the selected samples: ``ex.history.undo()`` steps back.
    """

    def __init__(
        self,
        sae: Any,
        dataset: Any,
        projection: str = "codes",
        *,
        chunk_size: int = 8192,
        seed: int = 0,
        model: Any = None,
        layer: Any = None,
        inputs: Any = None,
        input_fn: Any = None,
        tokenizer: Any = None,
        codes_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        n_features = _check_fitted(sae)
        if not isinstance(dataset, Dataset):
            dataset = Dataset(dataset)
        if dataset.X.shape[1] != n_features:
            raise ValueError(
                f"dataset must have the SAE's input dimension {n_features}; its X has shape "
                f"{dataset.X.shape}"
            )
        if projection not in _SOURCES:
            raise ValueError(f"projection must be one of {_SOURCES}; got {projection!r}")
        self.sae = sae
        self.dataset: Dataset = dataset
        self.default_projection = projection
        self.chunk_size = check_positive_int(chunk_size, "chunk_size")
        self.seed = int(seed)
        self.codes_dir = None if codes_dir is None else Path(codes_dir)
        self.n_samples = int(dataset.X.shape[0])
        self.n_units = int(np.shape(sae.components_)[0])
        self.selection = Selection(self.n_units, self.n_samples, attributes=dataset.attributes)
        self.history = SelectionHistory(self.selection)
        self._codes: CodeStore | None = None
        self._projections: dict[str, Projection] = {}
        self._display: dict[tuple[str, int], NDArray[np.int64]] = {}
        self._decoder: NDArray[np.float32] | None = None
        self._directions: NDArray[np.float32] | None = None
        self._summaries: OrderedDict[tuple[Any, ...], UnitSummary] = OrderedDict()
        self._last_enrichment: tuple[tuple[int, bytes], Enrichment] | None = None
        self.steerer = self._steerer(model, layer, inputs, input_fn, tokenizer)

    def _steerer(
        self, model: Any, layer: Any, inputs: Any, input_fn: Any, tokenizer: Any
    ) -> Steerer | None:
        if model is None and layer is None:
            if inputs is not None or input_fn is not None or tokenizer is not None:
                raise ValueError("inputs, input_fn and tokenizer need model= and layer=")
            return None
        if model is None or layer is None:
            raise ValueError("model and layer go together: pass both or neither")
        steerer = Steerer(
            self.sae, model, layer, inputs=inputs, input_fn=input_fn, tokenizer=tokenizer
        )
        if steerer.inputs is not None and steerer.inputs.shape[0] != self.n_samples:
            raise ValueError(
                f"inputs must hold one model input per sample ({self.n_samples}); got "
                f"{steerer.inputs.shape[0]}"
            )
        return steerer

    # ---- cached data -------------------------------------------------------------------

    @property
    def codes(self) -> CodeStore:
        """Sparse unit codes of every sample (encoded on first access, then cached)."""
        if self._codes is None:
            if self.codes_dir is not None:  # memory-mapped files: RAM stays small at 1e6+
                self._codes = encode_to_folder(self.sae, self.dataset.X, self.codes_dir)
            else:
                self._codes = CodeStore.from_sae(
                    self.sae, self.dataset.X, chunk_size=self.chunk_size
                )
        return self._codes

    @property
    def is_encoded(self) -> bool:
        """Whether the codes have been built (views may show a spinner until then)."""
        return self._codes is not None

    @property
    def decoder_directions(self) -> NDArray[np.float32]:
        """(n_units, d) unit-norm decoder directions, computed once."""
        if self._directions is None:
            self._directions = normalize_rows(self._components())
        return self._directions

    def _components(self) -> NDArray[np.float32]:
        if self._decoder is None:
            components = self.sae.components_
            if hasattr(components, "detach"):  # a torch tensor: views only see numpy
                components = components.detach().cpu().numpy()
            self._decoder = np.asarray(components, dtype=np.float32)
        return self._decoder

    def unit_direction(self, unit: int) -> NDArray[np.float32]:
        """(d,) decoder direction of `unit`, as stored (not normalised)."""
        unit = check_index(unit, self.n_units, "unit")
        return self._components()[unit].copy()

    def refresh(self) -> None:
        """Forget every cached result (call after training the SAE further)."""
        self._codes = None
        self._projections.clear()
        self._display.clear()
        self._decoder = None
        self._directions = None
        self._summaries.clear()
        self._last_enrichment = None

    # ---- answers for the views ---------------------------------------------------------

    def unit_summary(self, unit: int, **options: Any) -> UnitSummary:
        """Summary of `unit` (see `sae_widgets.analysis.unit_summary` for `options`).

        Labels and decoder come from the dataset and the SAE; recent results are cached.
        """
        unit = check_index(unit, self.n_units, "unit")
        key = (unit, *sorted(options.items()))
        cached = self._summaries.get(key)
        if cached is not None:
            self._summaries.move_to_end(key)
            return cached
        options.setdefault("seed", self.seed)
        summary = unit_summary(
            self.codes,
            unit,
            self.decoder_directions,
            labels=self.dataset.labels,
            label_names=self.dataset.label_names,
            decoder_normalized=True,
            **options,
        )
        self._summaries[key] = summary
        if len(self._summaries) > _SUMMARY_CACHE_SIZE:
            self._summaries.popitem(last=False)
        return summary

    def projection(self, source: str | None = None) -> Projection:
        """2-D PCA of the codes or the inputs (default: the Explorer's `projection`), cached."""
        source = self.default_projection if source is None else source
        if source not in _SOURCES:
            raise ValueError(f"source must be one of {_SOURCES}; got {source!r}")
        if source not in self._projections:
            data = self.codes.csr if source == "codes" else self.dataset.X
            self._projections[source] = _pca_2d(data, source, self.seed)
        return self._projections[source]

    def display_samples(
        self, max_points: int = 20_000, source: str | None = None
    ) -> NDArray[np.int64]:
        """Sorted indices of the (at most `max_points`) samples a scatter of the projection
        should draw; a brush still selects over all samples (`samples_in_rect`). Cached: the
        same subset every call, so a view sends its points once and then only colours."""
        source = self.default_projection if source is None else source
        key = (source, int(max_points))
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

    def _samples_or_selection(self, samples: Any) -> NDArray[np.int64]:
        chosen = self.selection.samples if samples is None else samples
        return check_indices(chosen, self.n_samples, "samples")

    def enrichment(self, samples: Any = None, top: int | None = 20) -> Enrichment:
        """Units most enriched in `samples` (default: the current selection's samples).

        The full ranking of the last set asked about is kept, so the list view and the heatmap
        columns of one brush share one computation.
        """
        chosen = np.unique(self._samples_or_selection(samples))
        key = (self.codes.n_samples, chosen.tobytes())
        if self._last_enrichment is None or self._last_enrichment[0] != key:
            self._last_enrichment = (key, enrichment(self.codes, chosen, top=None))
        ranking = self._last_enrichment[1]
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
        labels = self.dataset.labels
        if rows is None:
            picked: Any = self.selection.samples
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

    def attribute(self, name: str) -> Attribute:
        """The dataset attribute called `name`, or a ValueError listing the known ones."""
        attributes = self.dataset.attributes
        if name not in attributes:
            known = ", ".join(sorted(attributes)) or "none"
            raise ValueError(f"attribute must be one of the dataset's ({known}); got {name!r}")
        return attributes[name]

    def probe(self, samples: Any, attribute: str | Attribute, values: Any = None) -> ProbeResult:
        """Vary `attribute` of one sample (an int) or a set (the mean response) over `values`
        (default: the attribute's grid) and measure every unit's response."""
        if isinstance(samples, Integral):
            samples = [check_index(samples, self.n_samples, "samples")]
        found = self.attribute(attribute) if isinstance(attribute, str) else attribute
        return probe_attribute(self.sae, found, samples, self.n_samples, values)

    def reconstruct(self, indices: Any) -> NDArray[np.float32]:
        """(len(indices), d) the SAE's reconstruction of those samples from the stored codes."""
        rows = check_indices(np.atleast_1d(np.asarray(indices)), self.n_samples, "indices")
        with threads_for_batch(len(rows)):
            decoded = self.sae.inverse_transform(self.codes.dense(rows))
        return np.asarray(decoded, dtype=np.float32)

    # ---- nested prefixes (Matryoshka) -------------------------------------------------

    @property
    def prefix_sizes(self) -> tuple[int, ...] | None:
        """The SAE's nested prefix sizes (a Matryoshka SAE), else None."""
        sizes = getattr(self.sae, "prefix_sizes_", None)
        return tuple(int(n) for n in sizes) if sizes is not None else None

    def _decoder_bias(self) -> NDArray[np.float32]:
        """(d,) the reconstruction of all-zero codes: the decoder bias."""
        zeros = np.zeros((1, self.n_units), dtype=np.float32)
        return np.asarray(self.sae.inverse_transform(zeros), dtype=np.float32)[0]

    def prefix_metrics(self, sizes: Any = None) -> PrefixMetrics:
        """FVU, MSE and L0 over the dataset using only the first n units, for each n in
        `sizes` (default: the SAE's prefix sizes, else n_units / 8, / 4, / 2 and all)."""
        if sizes is None:
            sizes = self.prefix_sizes or sorted({max(1, self.n_units >> j) for j in range(4)})
        return prefix_metrics(
            self.dataset.X, self.codes.csr, self._components(), self._decoder_bias(), sizes
        )

    def reconstruct_prefix(self, indices: Any, n_units: int) -> NDArray[np.float32]:
        """(len(indices), d) reconstruction of those samples from their first `n_units`
        units only (`reconstruct` with every unit)."""
        rows = check_indices(np.atleast_1d(np.asarray(indices)), self.n_samples, "indices")
        return prefix_reconstruction(
            self.codes.csr[rows], self._components(), self._decoder_bias(), n_units
        )

    def logit_effects(self, unit: int, top: int = 10) -> LogitEffects | None:
        """The tokens `unit`'s decoder direction promotes and suppresses most (through the
        causal LM's unembedding and final-norm scale), or None when the dataset holds no
        causal LM's tokens. Token ids; ``dataset.tokens.vocab_text(ids)`` spells them."""
        unit = check_index(unit, self.n_units, "unit")
        tokens = self.dataset.tokens
        if tokens is None or tokens.documents.unembedding is None:
            return None
        documents = tokens.documents
        return logit_effects(
            self._components()[unit],
            documents.unembedding,
            top,
            norm_weight=documents.norm_weight,
        )

    def selection_to_dataset(self) -> Dataset:
        """The selected samples as a Dataset of their own (labels, images, ... carried over)."""
        return self.dataset[np.asarray(self.selection.samples, dtype=np.int64)]

    def selection_to_dataframe(self) -> Any:
        """The selected samples as a pandas DataFrame (pandas is optional): one row per
        sample with its index, label (when known), number of active units, and its activation
        of the focused unit (when one is focused)."""
        try:
            import pandas as pd
        except ImportError as error:  # pragma: no cover - pandas ships with bqplot
            raise ImportError("selection_to_dataframe needs pandas: pip install pandas") from error
        samples = np.asarray(self.selection.samples, dtype=np.int64)
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

    def dashboard(self, **options: Any) -> ipywidgets.Widget:
        """All views laid out together and linked through `selection` (one ipywidgets widget)."""
        from sae_widgets.widgets.dashboard import build_dashboard

        return build_dashboard(self, **options)

    def __repr__(self) -> str:
        state = repr(self._codes) if self._codes is not None else "codes not built yet"
        return f"Explorer({type(self.sae).__name__} with {self.n_units} units, {state})"
