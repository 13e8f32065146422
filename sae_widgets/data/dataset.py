"""`Dataset`: the vectors an SAE sees, plus what we know about each sample."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from sae_widgets.data._arrays import _as_float32, _check_finite, _to_numpy, sample_rows
from sae_widgets.data.attribute import Attribute
from sae_widgets.data.tokens import TokenRows
from sae_widgets.label_codes import MAX_LABEL, encode_labels

__all__ = ["MAX_LABEL", "Attribute", "Dataset", "sample_rows"]


class Dataset:
    """Vectors for an SAE plus what is known about each sample.

    Parameters
    ----------
    X: (n, d) vectors (numpy or torch); stored as float32, C-contiguous.
    labels: (n,) class of each sample, or None. Integers are class indices (-1 means "no
        label"). Labels of any other kind are class names (strings, bools, fractional
        numbers): they are stored as integer codes, and `label_names` becomes their distinct
        values in sorted order (["cat", "dog"] for labels ["dog", "cat", "dog"], codes
        [1, 0, 1]; ["False", "True"] for bools); None among names means "no label".
    label_names: name of each class (label i is `label_names[i]`), or None. Given with
        labels that are names, it fixes their numbering and must list every one of them.
    images: (n, h, w) or (n, h, w, 3) drawing of each sample, or None; (n, h, w, 1) is
        taken as (n, h, w) grey images.
    factors: known generative factors, name -> (n,) array, or None.
    true_features: (n_features, d) ground-truth directions, or None.
    true_codes: (n, n_features) ground-truth coefficients (scipy.sparse CSR), or None;
        X == true_codes @ true_features for synthetic data.
    attributes: name -> Attribute a probe can vary (each bound to these n samples).
    name: short description shown in reprs and titles.
    tokens: for token activations of a language model, a `TokenRows` saying which token of
        which document each row is (see `collect_activations`), or None.
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
        tokens: TokenRows | None = None,
    ) -> None:
        given = X
        X = _to_numpy(X, "X")
        # the type first: None or a dict is a TypeError, not "got shape ()"
        if X.dtype == object:
            raise TypeError(
                f"X must be a 2-D array of numbers (n_samples, n_features); got "
                f"{type(given).__name__}"
            )
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
            raise TypeError(f"X must hold numbers; got dtype {X.dtype}")
        if np.issubdtype(X.dtype, np.complexfloating):
            raise TypeError(f"X must hold real numbers; got complex dtype {X.dtype}")
        if X.ndim != 2:
            raise ValueError(f"X must be a 2-D array (n_samples, n_features); got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError("X is empty: a dataset needs at least one sample")
        if X.shape[1] == 0:
            raise ValueError("X has no features: expected shape (n_samples, n_features >= 1)")
        X = _as_float32(X, "X")
        n = X.shape[0]
        self.X: np.ndarray = X
        if label_names is not None and labels is None:
            raise ValueError("label_names given without labels")
        self.labels: np.ndarray | None = None
        self.label_names: list[str] | None = None
        if labels is not None:
            self.labels, self.label_names = encode_labels(labels, n, label_names)
        self.images = self._check_images(images, n)
        self.factors = self._check_factors(factors, n)
        self.true_features = self._check_true_features(true_features, X.shape[1])
        self.true_codes = self._check_true_codes(true_codes, n, self.true_features)
        self.attributes = self._check_attributes(attributes, n)
        self.tokens = self._check_tokens(tokens, n)
        self.name = str(name)

    # ---------------------------------------------------------------------------- validation

    @staticmethod
    def _check_images(images: Any, n: int) -> np.ndarray | None:
        if images is None:
            return None
        arr = _to_numpy(images, "images")
        if arr.ndim == 4 and arr.shape[3] == 1:  # one channel, channels last: grey images
            arr = arr[..., 0]
        ok_shape = arr.ndim == 3 or (arr.ndim == 4 and arr.shape[3] == 3)
        if not ok_shape or arr.shape[0] != n:
            raise ValueError(
                f"images must have shape (n, h, w), (n, h, w, 1) or (n, h, w, 3) with n={n}; "
                f"got {np.shape(images)}"
            )
        if arr.shape[1] == 0 or arr.shape[2] == 0:  # nothing any view could draw
            raise ValueError(f"images must be at least 1 x 1 pixel; got shape {np.shape(images)}")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError(f"images must hold numbers; got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.complexfloating):
            raise TypeError(f"images must hold real numbers; got complex dtype {arr.dtype}")
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
            if np.issubdtype(arr.dtype, np.complexfloating):
                raise TypeError(
                    f"factors[{key!r}] must hold real numbers; got complex dtype {arr.dtype}"
                )
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
        arr = _as_float32(arr, "true_features")
        return arr

    @staticmethod
    def _check_true_codes(
        true_codes: Any, n: int, true_features: np.ndarray | None
    ) -> sp.csr_matrix | None:
        if true_codes is None:
            return None
        if sp.issparse(true_codes):
            dtype, shape = true_codes.dtype, true_codes.shape
        else:  # checked as numpy first: scipy's own messages name neither field nor shape
            dense = _to_numpy(true_codes, "true_codes")
            dtype, shape = dense.dtype, dense.shape
        if dtype.kind not in "fiub":
            raise TypeError(f"true_codes must hold real numbers; got dtype {dtype}")
        if len(shape) != 2:
            raise ValueError(
                f"true_codes must be 2-D (n_samples, n_features); got shape {tuple(shape)}"
            )
        codes = sp.csr_matrix(true_codes if sp.issparse(true_codes) else dense)
        _check_finite(codes.data, "true_codes")
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

    @staticmethod
    def _check_tokens(tokens: TokenRows | None, n: int) -> TokenRows | None:
        if tokens is None:
            return None
        if not isinstance(tokens, TokenRows):
            raise TypeError(f"tokens must be a TokenRows or None; got {type(tokens).__name__}")
        if len(tokens) != n:
            raise ValueError(f"tokens must describe every row (n={n}); got {len(tokens)} rows")
        return tokens

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
        rows = sample_rows(index, len(self), "index")
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
            tokens=None if self.tokens is None else self.tokens[rows],
        )

    def __repr__(self) -> str:
        n, d = self.X.shape
        present = [
            field
            for field in ("labels", "images", "factors", "true_features", "true_codes", "tokens")
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
