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
from numpy.typing import NDArray

from sae_widgets.analysis import (
    CodeStore,
    Enrichment,
    ProbeResult,
    Projection,
    UnitSummary,
    probe_attribute,
    unit_summary,
)
from sae_widgets.analysis.checks import check_index, check_positive_int, check_seed
from sae_widgets.analysis.code_files import encode_to_folder
from sae_widgets.analysis.logits import LogitEffects, logit_effects
from sae_widgets.analysis.projection import pca_2d
from sae_widgets.analysis.summary import LabelIndex, normalize_rows, prepare_labels
from sae_widgets.analysis.threads import threads_for_batch
from sae_widgets.data.dataset import Attribute, Dataset, sample_rows
from sae_widgets.explore.history import SelectionHistory
from sae_widgets.explore.prefixes import PrefixQueries
from sae_widgets.explore.selection import Selection
from sae_widgets.explore.selection_queries import SelectionQueries
from sae_widgets.explore.steering import Steerer
from sae_widgets.paths import as_path
from sae_widgets.wording import counted

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


def _check_source(value: Any, name: str) -> None:
    """What a projection is of: one of _SOURCES (TypeError for a non-string)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {_SOURCES}; got {value!r} ({type(value).__name__})")
    if value not in _SOURCES:
        raise ValueError(f"{name} must be one of {_SOURCES}; got {value!r}")


class Explorer(SelectionQueries, PrefixQueries):
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
            try:
                dataset = Dataset(dataset)
            except (TypeError, ValueError) as err:
                raise (TypeError if isinstance(err, TypeError) else ValueError)(
                    f"dataset must be a sae_widgets.Dataset or an (n_samples, n_features) "
                    f"array; got {type(dataset).__name__} ({err})"
                ) from None
        if dataset.X.shape[1] != n_features:
            raise ValueError(
                f"dataset must have the SAE's input dimension {n_features}; its X has shape "
                f"{dataset.X.shape}"
            )
        _check_source(projection, "projection")
        if codes_dir is not None:
            codes_dir = as_path(codes_dir, "codes_dir")
        if codes_dir is not None and Path(codes_dir).exists() and not Path(codes_dir).is_dir():
            raise ValueError(f"codes_dir must be a folder; {str(codes_dir)!r} is a file")
        self.sae = sae
        self.dataset: Dataset = dataset
        self.default_projection = projection
        self.chunk_size = check_positive_int(chunk_size, "chunk_size")
        self.seed = check_seed(seed)  # the projections' PCA takes seeds below 2**32
        self.codes_dir = None if codes_dir is None else Path(codes_dir)
        self.n_samples = int(dataset.X.shape[0])
        self.n_units = self._sae_units()
        self.selection = Selection(self.n_units, self.n_samples, attributes=dataset.attributes)
        self.history = SelectionHistory(self.selection)
        self._codes: CodeStore | None = None
        self._projections: dict[str, Projection] = {}
        self._display: dict[tuple[str, int], NDArray[np.int64]] = {}
        self._by_y: dict[str, Any] = {}  # points sorted by y, per projection (lassos)
        self._decoder: NDArray[np.float32] | None = None
        self._directions: NDArray[np.float32] | None = None
        self._summaries: OrderedDict[tuple[Any, ...], UnitSummary] = OrderedDict()
        self._labels: tuple[Any, Any, LabelIndex] | None = None  # (labels, names, index)
        # (key, the samples asked about, their full ranking): see SelectionQueries.enrichment
        self._last_enrichment: tuple[tuple[int, int, bytes], Any, Enrichment] | None = None
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
            self._check_units()
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
            self._check_units()
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
        """Re-read the SAE after training it further (or refitting it): forget every cached
        result, take its unit count, and bump ``selection.revision`` so every open view
        redraws from the new codes (a focused unit the SAE no longer has is cleared).

        The SAE's input width must not change: the dataset's X is read as its inputs, so
        then a ValueError says to build a new Explorer (and nothing is forgotten)."""
        n_features = _check_fitted(self.sae)
        if n_features != self.dataset.n_features:
            raise ValueError(
                f"sae now takes inputs of width {n_features}, but this Explorer's dataset has "
                f"width {self.dataset.n_features}: build a new Explorer for the refit SAE "
                "(sw.Explorer(sae, dataset))"
            )
        n_units = self._sae_units()
        self._codes = None
        self._projections.clear()
        self._display.clear()
        self._by_y.clear()
        self._decoder = None
        self._directions = None
        self._summaries.clear()
        self._last_enrichment = None
        self._labels = None
        if self.steerer is not None:
            self.steerer.refresh()
        self.n_units = n_units
        self.selection.new_revision(n_units)  # the views follow it and redraw

    def _sae_units(self) -> int:
        """The SAE's unit count: its module's config where it has one (`components_` copies
        the whole decoder), else the decoder's rows."""
        config = getattr(getattr(self.sae, "model_", None), "cfg", None)
        n_units = getattr(config, "n_units", None)
        if isinstance(n_units, Integral) and not isinstance(n_units, bool):
            return int(n_units)
        return int(np.shape(self.sae.components_)[0])

    def _check_units(self) -> None:
        """Before reading the SAE into a cache: it must still have the Explorer's unit count
        (a refit changes it; the caches and the Selection's range follow only `refresh`)."""
        n_units = self._sae_units()
        if n_units != self.n_units:
            raise ValueError(
                f"sae now has {counted(n_units, 'unit')} but this Explorer was built for "
                f"{self.n_units}: call ex.refresh() after refitting the SAE"
            )

    # ---- answers for the views ---------------------------------------------------------

    def unit_summary(self, unit: int, **options: Any) -> UnitSummary:
        """Summary of `unit` (see `sae_widgets.analysis.unit_summary` for `options`).

        Labels and decoder come from the dataset and the SAE; recent results are cached.
        """
        unit = check_index(unit, self.n_units, "unit")
        key: tuple[Any, ...] | None = (unit, *sorted(options.items()))
        try:
            cached = self._summaries.get(key)  # type: ignore[arg-type]
        except TypeError:  # an unhashable option value: no caching; unit_summary checks it
            key, cached = None, None
        if cached is not None and key is not None:
            self._summaries.move_to_end(key)
            return cached
        options.setdefault("seed", self.seed)
        summary = unit_summary(
            self.codes,
            unit,
            self.decoder_directions,
            labels=self._label_index(),
            decoder_normalized=True,
            **options,
        )
        if key is None:
            return summary
        self._summaries[key] = summary
        if len(self._summaries) > _SUMMARY_CACHE_SIZE:
            self._summaries.popitem(last=False)
        return summary

    def _label_index(self) -> LabelIndex | None:
        """The dataset's labels checked once for every unit summary (None without labels)."""
        labels = self.dataset.labels
        if labels is None:
            return None
        names = self.dataset.label_names
        kept = self._labels
        if kept is None or kept[0] is not labels or kept[1] is not names:  # replaced: again
            kept = self._labels = (labels, names, prepare_labels(labels, self.n_samples, names))
        return kept[2]

    def projection(self, source: str | None = None) -> Projection:
        """2-D PCA of the codes or the inputs (default: the Explorer's `projection`), cached."""
        source = self.default_projection if source is None else source
        _check_source(source, "source")
        if source not in self._projections:
            data = self.codes.csr if source == "codes" else self.dataset.X
            self._projections[source] = pca_2d(data, source, self.seed)
        return self._projections[source]

    def attribute(self, name: str) -> Attribute:
        """The dataset attribute called `name`, or a ValueError listing the known ones."""
        attributes = self.dataset.attributes
        if not isinstance(name, str) or name not in attributes:
            known = ", ".join(sorted(attributes)) or "none"
            error = ValueError if isinstance(name, str) else TypeError  # a name is a string
            raise error(f"attribute must be one of the dataset's ({known}); got {name!r}")
        return attributes[name]

    def probe(self, samples: Any, attribute: str | Attribute, values: Any = None) -> ProbeResult:
        """Vary `attribute` of one sample (an int) or a set (the mean response) over `values`
        (default: the attribute's grid) and measure every unit's response. `samples` are read
        as Dataset indexing reads them (a boolean mask, a slice, negative ints: these were
        refused, as `reconstruct` once refused them)."""
        if isinstance(samples, Integral) and not isinstance(samples, bool):
            n, index = self.n_samples, int(samples)  # negative counts from the end, as ds[-1]
            samples = [check_index(index + n if -n <= index < 0 else index, n, "samples")]
        if getattr(samples, "is_meta", False) is not True:  # a meta tensor: probe's TypeError
            samples = sample_rows(samples, self.n_samples, "samples")
        found = self.attribute(attribute) if isinstance(attribute, str) else attribute
        self._check_units()  # the sweep runs the SAE itself: its units must be the views'
        return probe_attribute(self.sae, found, samples, self.n_samples, values)

    def reconstruct(self, indices: Any) -> NDArray[np.float32]:
        """(len(rows), d) the SAE's reconstruction, from the stored codes, of the samples that
        `indices` picks as Dataset indexing does: one int (a row of one), an int array,
        a slice or a boolean mask of length n_samples."""
        rows = sample_rows(indices, self.n_samples, "indices", allow_empty=True)
        self._check_units()  # the stored codes must fit the SAE that decodes them
        with threads_for_batch(len(rows)):
            decoded = self.sae.inverse_transform(self.codes.dense(rows))
        return np.asarray(decoded, dtype=np.float32)

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

    def dashboard(self, **options: Any) -> ipywidgets.Widget:
        """All views laid out together and linked through `selection` (one ipywidgets widget)."""
        from sae_widgets.widgets.dashboard import build_dashboard

        return build_dashboard(self, **options)

    def __repr__(self) -> str:
        state = repr(self._codes) if self._codes is not None else "codes not built yet"
        return f"Explorer({type(self.sae).__name__} with {counted(self.n_units, 'unit')}, {state})"
