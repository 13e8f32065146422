"""`Dataset` (the vectors an SAE sees, plus what we know about each sample) and `Attribute`
(one thing a probe can vary about a sample, e.g. a digit's rotation).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

# apply_fn(rows, value) -> float32 (len(rows), d): `rows` index the dataset the function was
# written for (the "base" rows); `Attribute` maps a subset's own rows onto them.
ApplyFn = Callable[[np.ndarray, float], np.ndarray]
# sweep_fn(rows, values) -> float32 (len(values), len(rows), d); optional fast path.
SweepFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _to_numpy(value: Any, name: str) -> np.ndarray:
    """Turn an array-like (numpy, torch tensor, list) into a numpy array."""
    # torch is looked up, not imported: a tensor can only exist if torch is already loaded,
    # and importing it here would make `import sae_widgets.data` cost a second.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be array-like; got {type(value).__name__}") from err


def _check_finite(array: np.ndarray, name: str) -> None:
    if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
        return
    # min and max propagate NaN and expose infinities without a full-size boolean temporary
    if not (np.isfinite(array.min()) and np.isfinite(array.max())):
        raise ValueError(f"{name} contains NaN or infinite values")


def _normalise_indices(indices: Any, n: int, name: str = "indices") -> np.ndarray:
    """Validate sample indices (int array-like or boolean mask) into an int64 array in [0, n)."""
    idx = _to_numpy(indices, name)
    if idx.ndim == 0:
        idx = idx.reshape(1)
    if idx.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of sample indices; got shape {idx.shape}")
    if idx.dtype == np.bool_:
        if idx.shape[0] != n:
            raise ValueError(
                f"{name} as a boolean mask must have one entry per sample (n={n}); "
                f"got {idx.shape[0]}"
            )
        return np.flatnonzero(idx)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{name} must hold integers or booleans; got dtype {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)
    low, high = int(idx.min()), int(idx.max())
    if low < -n or high >= n:
        bad = low if low < -n else high
        raise ValueError(f"{name} out of range: {bad} is not a sample index for n={n} samples")
    return np.where(idx < 0, idx + n, idx)


class Attribute:
    """One property of a sample that a probe can vary (rotation, a generative factor, ...).

    `apply(indices, value)` returns the X rows of those samples with the attribute set to
    `value`; `sweep(indices, values)` does it for a grid of values at once.

    Parameters
    ----------
    name: what the attribute is called (the key in `Dataset.attributes`).
    values: default grid a slider walks over (1-D, finite); `identity` is added if missing.
    apply_fn: `apply_fn(rows, value) -> (len(rows), d)` on the rows of the dataset it was built
        for. Called only with validated rows and a finite float value.
    identity: the value that leaves every sample unchanged (rotation 0, scale 1), or None when
        no single value does (a shape factor, a ground-truth coefficient).
    n_samples: how many samples `apply_fn` accepts rows for; `Dataset` fills it in if None.
    sweep_fn: optional vectorised `sweep_fn(rows, values) -> (len(values), len(rows), d)`.
    description: one line for tooltips.
    """

    def __init__(
        self,
        name: str,
        values: Any,
        apply_fn: ApplyFn,
        *,
        identity: float | None = None,
        n_samples: int | None = None,
        sweep_fn: SweepFn | None = None,
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string; got {name!r}")
        if not callable(apply_fn):
            raise TypeError(f"apply_fn must be callable; got {type(apply_fn).__name__}")
        if sweep_fn is not None and not callable(sweep_fn):
            raise TypeError(f"sweep_fn must be callable or None; got {type(sweep_fn).__name__}")
        grid = np.asarray(_to_numpy(values, "values"), dtype=np.float64)
        if grid.ndim != 1 or grid.size == 0:
            raise ValueError(f"values must be a non-empty 1-D grid; got shape {grid.shape}")
        _check_finite(grid, "values")
        if identity is not None:
            identity = float(identity)
            if not np.isfinite(identity):
                raise ValueError(f"identity must be finite or None; got {identity}")
            if not np.any(grid == identity):
                grid = np.sort(np.append(grid, identity))
        if n_samples is not None and (not isinstance(n_samples, int) or n_samples < 1):
            raise ValueError(f"n_samples must be a positive int or None; got {n_samples!r}")
        self.name = name
        self.values = grid
        self.identity = identity
        self.n_samples = n_samples
        self.description = description
        self._apply_fn = apply_fn
        self._sweep_fn = sweep_fn
        # rows of the base dataset that this attribute's samples are (None: all, in order)
        self._rows: np.ndarray | None = None

    # ----------------------------------------------------------------------------- evaluation

    def _base_rows(self, indices: Any) -> np.ndarray:
        idx = _normalise_indices(indices, self._bound_size())
        return idx if self._rows is None else self._rows[idx]

    @staticmethod
    def _check_value(value: Any) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError) as err:
            raise TypeError(f"value must be a number; got {type(value).__name__}") from err
        if not np.isfinite(v):
            raise ValueError(f"value must be finite; got {v}")
        return v

    def apply(self, indices: Any, value: float) -> np.ndarray:
        """X rows of samples `indices` with this attribute set to `value`: float32 (m, d)."""
        rows = self._base_rows(indices)
        out = np.asarray(self._apply_fn(rows, self._check_value(value)), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != rows.shape[0]:
            raise ValueError(
                f"attribute {self.name!r}: apply_fn returned shape {out.shape}, expected "
                f"({rows.shape[0]}, d)"
            )
        return out

    def sweep(self, indices: Any, values: Any = None) -> np.ndarray:
        """`apply` for every value of a grid (default `self.values`): float32 (v, m, d)."""
        rows = self._base_rows(indices)
        if values is None:
            grid = self.values
        else:
            grid = np.asarray(_to_numpy(values, "values"), dtype=np.float64).reshape(-1)
            if grid.size == 0:
                raise ValueError("values must hold at least one value")
            _check_finite(grid, "values")
        if self._sweep_fn is not None:
            out = np.asarray(self._sweep_fn(rows, grid), dtype=np.float32)
        else:
            out = np.stack([np.asarray(self._apply_fn(rows, float(v))) for v in grid])
            out = out.astype(np.float32, copy=False)
        if out.ndim != 3 or out.shape[:2] != (grid.size, rows.shape[0]):
            raise ValueError(
                f"attribute {self.name!r}: sweep returned shape {out.shape}, expected "
                f"({grid.size}, {rows.shape[0]}, d)"
            )
        return out

    # ---------------------------------------------------------------------------- derivation

    def _copy(self) -> Attribute:
        new = Attribute.__new__(Attribute)
        new.__dict__.update(self.__dict__)
        return new

    def bind(self, n_samples: int) -> Attribute:
        """This attribute with `n_samples` set (what `Dataset` does for unbound attributes)."""
        new = self._copy()
        new.n_samples = int(n_samples)
        return new

    def subset(self, indices: Any) -> Attribute:
        """The attribute for the samples `indices`: its row i is this attribute's row
        indices[i] (what `Dataset.__getitem__` uses to keep attributes aligned)."""
        return self._subset_checked(_normalise_indices(indices, self._bound_size()))

    def _bound_size(self) -> int:
        if self.n_samples is None:
            raise ValueError(
                f"attribute {self.name!r} is not bound to a dataset; pass n_samples or attach "
                "it to a Dataset first"
            )
        return self.n_samples

    def _subset_checked(self, idx: np.ndarray) -> Attribute:
        """`subset` for indices already validated against n_samples (Dataset does that once
        for all its attributes)."""
        new = self._copy()
        new._rows = idx if self._rows is None else self._rows[idx]
        new.n_samples = int(idx.shape[0])
        return new

    def map(self, fn: Callable[[np.ndarray], np.ndarray], name: str | None = None) -> Attribute:
        """An attribute whose rows are `fn(self.apply(...))`, e.g. the varied input passed
        through a model. `fn` maps float32 (m, d_in) to (m, d_out) and must treat rows
        independently (sweeps call it once on all values' rows stacked)."""
        base = self

        def apply_fn(rows: np.ndarray, value: float) -> np.ndarray:
            return fn(base._raw_apply(rows, value))

        def sweep_fn(rows: np.ndarray, grid: np.ndarray) -> np.ndarray:
            varied = base._raw_sweep(rows, grid)
            out = np.asarray(fn(varied.reshape(-1, varied.shape[-1])))
            return out.reshape(grid.size, rows.shape[0], -1)

        return Attribute(
            name or self.name,
            self.values,
            apply_fn,
            identity=self.identity,
            n_samples=self.n_samples,
            sweep_fn=sweep_fn,
            description=self.description,
        )._with_rows(self._rows)

    def _with_rows(self, rows: np.ndarray | None) -> Attribute:
        self._rows = rows
        return self

    def _raw_apply(self, rows: np.ndarray, value: float) -> np.ndarray:
        return np.asarray(self._apply_fn(rows, value), dtype=np.float32)

    def _raw_sweep(self, rows: np.ndarray, grid: np.ndarray) -> np.ndarray:
        if self._sweep_fn is not None:
            return np.asarray(self._sweep_fn(rows, grid), dtype=np.float32)
        return np.stack([self._raw_apply(rows, float(v)) for v in grid])

    def __repr__(self) -> str:
        lo, hi = self.values.min(), self.values.max()
        return (
            f"Attribute({self.name!r}, values={lo:g}..{hi:g} ({self.values.size}), "
            f"identity={self.identity}, n_samples={self.n_samples})"
        )


class Dataset:
    """Vectors for an SAE plus what is known about each sample.

    Parameters
    ----------
    X: (n, d) vectors (numpy or torch); stored as float32, C-contiguous.
    labels: (n,) integer class per sample (-1 means "no label"), or None.
    label_names: name of each class (label i is `label_names[i]`), or None.
    images: (n, h, w) or (n, h, w, 3) drawing of each sample, or None.
    factors: known generative factors, name -> (n,) array, or None.
    true_features: (n_features, d) ground-truth directions, or None.
    true_codes: (n, n_features) ground-truth coefficients (scipy.sparse CSR), or None;
        X == true_codes @ true_features for synthetic data.
    attributes: name -> Attribute a probe can vary (each bound to these n samples).
    name: short description shown in reprs and titles.
    """

    def __init__(
        self,
        X: Any,
        labels: Any = None,
        label_names: Any = None,
        images: Any = None,
        factors: Mapping[str, Any] | None = None,
        true_features: Any = None,
        attributes: Mapping[str, Attribute] | None = None,
        true_codes: Any = None,
        name: str = "",
    ) -> None:
        X = _to_numpy(X, "X")
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D array (n_samples, n_features); got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError("X is empty: a dataset needs at least one sample")
        if X.shape[1] == 0:
            raise ValueError("X has no features: expected shape (n_samples, n_features >= 1)")
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
            raise TypeError(f"X must hold numbers; got dtype {X.dtype}")
        X = np.ascontiguousarray(X, dtype=np.float32)
        _check_finite(X, "X")
        n = X.shape[0]
        self.X: np.ndarray = X
        self.labels = self._check_labels(labels, n)
        self.label_names = self._check_label_names(label_names, self.labels)
        self.images = self._check_images(images, n)
        self.factors = self._check_factors(factors, n)
        self.true_features = self._check_true_features(true_features, X.shape[1])
        self.true_codes = self._check_true_codes(true_codes, n, self.true_features)
        self.attributes = self._check_attributes(attributes, n)
        self.name = str(name)

    # ---------------------------------------------------------------------------- validation

    @staticmethod
    def _check_labels(labels: Any, n: int) -> np.ndarray | None:
        if labels is None:
            return None
        arr = _to_numpy(labels, "labels")
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ValueError(
                f"labels must have one entry per sample (n={n}); got shape {arr.shape}"
            )
        if np.issubdtype(arr.dtype, np.floating):
            _check_finite(arr, "labels")
            if not np.all(arr == np.round(arr)):
                raise TypeError("labels must be integers; got non-integer floats")
        elif not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"labels must be integers; got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr.size and arr.min() < -1:
            raise ValueError(f"labels must be >= -1 (-1 means no label); got {arr.min()}")
        return arr

    @staticmethod
    def _check_label_names(label_names: Any, labels: np.ndarray | None) -> list[str] | None:
        if label_names is None:
            return None
        if labels is None:
            raise ValueError("label_names given without labels")
        if isinstance(label_names, str) or not hasattr(label_names, "__iter__"):
            raise TypeError("label_names must be a list of strings")
        names = [str(s) for s in label_names]
        if labels.size and labels.max() >= len(names):
            raise ValueError(
                f"label_names must name every label: labels go up to {labels.max()} but only "
                f"{len(names)} names were given"
            )
        return names

    @staticmethod
    def _check_images(images: Any, n: int) -> np.ndarray | None:
        if images is None:
            return None
        arr = _to_numpy(images, "images")
        ok_shape = arr.ndim == 3 or (arr.ndim == 4 and arr.shape[3] == 3)
        if not ok_shape or arr.shape[0] != n:
            raise ValueError(
                f"images must have shape (n, h, w) or (n, h, w, 3) with n={n}; got {arr.shape}"
            )
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError(f"images must hold numbers; got dtype {arr.dtype}")
        _check_finite(arr, "images")
        return arr

    @staticmethod
    def _check_factors(factors: Mapping[str, Any] | None, n: int) -> dict[str, np.ndarray] | None:
        if factors is None:
            return None
        if not isinstance(factors, Mapping):
            raise TypeError(f"factors must be a dict name -> array; got {type(factors).__name__}")
        out: dict[str, np.ndarray] = {}
        for key, value in factors.items():
            arr = _to_numpy(value, f"factors[{key!r}]")
            if arr.ndim != 1 or arr.shape[0] != n:
                raise ValueError(
                    f"factors[{key!r}] must have one entry per sample (n={n}); got {arr.shape}"
                )
            if not np.issubdtype(arr.dtype, np.number):
                raise TypeError(f"factors[{key!r}] must hold numbers; got dtype {arr.dtype}")
            _check_finite(arr, f"factors[{key!r}]")
            out[str(key)] = arr
        return out

    @staticmethod
    def _check_true_features(true_features: Any, d: int) -> np.ndarray | None:
        if true_features is None:
            return None
        arr = _to_numpy(true_features, "true_features")
        if arr.ndim != 2 or arr.shape[1] != d:
            raise ValueError(
                f"true_features must have shape (n_features, d={d}); got shape {arr.shape}"
            )
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        _check_finite(arr, "true_features")
        return arr

    @staticmethod
    def _check_true_codes(
        true_codes: Any, n: int, true_features: np.ndarray | None
    ) -> sp.csr_matrix | None:
        if true_codes is None:
            return None
        codes = sp.csr_matrix(true_codes)
        if codes.shape[0] != n:
            raise ValueError(
                f"true_codes must have one row per sample (n={n}); got shape {codes.shape}"
            )
        if true_features is not None and codes.shape[1] != true_features.shape[0]:
            raise ValueError(
                f"true_codes must have one column per true feature "
                f"({true_features.shape[0]}); got shape {codes.shape}"
            )
        return codes

    @staticmethod
    def _check_attributes(
        attributes: Mapping[str, Attribute] | None, n: int
    ) -> dict[str, Attribute]:
        if attributes is None:
            return {}
        if not isinstance(attributes, Mapping):
            raise TypeError(
                f"attributes must be a dict name -> Attribute; got {type(attributes).__name__}"
            )
        out: dict[str, Attribute] = {}
        for key, attr in attributes.items():
            if not isinstance(attr, Attribute):
                raise TypeError(
                    f"attributes[{key!r}] must be an Attribute; got {type(attr).__name__}"
                )
            if attr.n_samples is None:
                attr = attr.bind(n)
            elif attr.n_samples != n:
                raise ValueError(
                    f"attributes[{key!r}] acts on {attr.n_samples} samples but the dataset has {n}"
                )
            out[str(key)] = attr
        return out

    # ----------------------------------------------------------------------------- container

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Dimension d of the vectors (not the number of ground-truth features)."""
        return int(self.X.shape[1])

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        """Shape of one image, (h, w) or (h, w, 3), or None."""
        return None if self.images is None else tuple(self.images.shape[1:])

    def __getitem__(self, index: Any) -> Dataset:
        """The samples `index` (int array, slice, boolean mask or one int) as a new Dataset,
        every field aligned and every attribute acting on the subset's own rows."""
        n = len(self)
        if isinstance(index, slice):
            rows = np.arange(n)[index]
        elif isinstance(index, (int, np.integer)):
            rows = _normalise_indices(np.array([index]), n, "index")
        else:
            rows = _normalise_indices(index, n, "index")
        if rows.size == 0:
            raise ValueError("index selects no samples: a dataset needs at least one sample")
        return Dataset(
            self.X[rows],
            labels=None if self.labels is None else self.labels[rows],
            label_names=None if self.label_names is None else list(self.label_names),
            images=None if self.images is None else self.images[rows],
            factors=None if self.factors is None else {k: v[rows] for k, v in self.factors.items()},
            true_features=self.true_features,
            true_codes=None if self.true_codes is None else self.true_codes[rows],
            attributes={k: a._subset_checked(rows) for k, a in self.attributes.items()},
            name=self.name,
        )

    def __repr__(self) -> str:
        n, d = self.X.shape
        present = [
            field
            for field in ("labels", "images", "factors", "true_features", "true_codes")
            if getattr(self, field) is not None
        ]
        parts = [f"n={n}", f"d={d}"]
        if self.name:
            parts.insert(0, repr(self.name))
        if self.labels is not None:
            n_classes = len(self.label_names) if self.label_names else len(np.unique(self.labels))
            parts.append(f"classes={n_classes}")
        if self.images is not None:
            parts.append("image_shape=" + "x".join(str(s) for s in self.images.shape[1:]))
        if self.factors:
            parts.append("factors=[" + ", ".join(self.factors) + "]")
        if self.true_features is not None:
            parts.append(f"true_features={self.true_features.shape[0]}")
        parts.append("fields=[" + ", ".join(present) + "]" if present else "fields=[]")
        names = list(self.attributes)
        if len(names) > 6:
            names = [*names[:5], f"... ({len(names)} in all)"]
        parts.append("attributes=[" + ", ".join(names) + "]")
        return "Dataset(" + ", ".join(parts) + ")"
