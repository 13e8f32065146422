"""Class labels of any kind as integer codes: shared by data/ (Dataset, TextCorpus), sae/
(scoring a classifier) and analysis/ (unit summaries), which never import each other
(DESIGN.md layering).

Integer labels are class indices already (-1: unlabelled). Labels of any other kind (strings,
bytes, bools, fractional numbers, any hashable objects) are names: they are numbered in
sorted order of their distinct values, which become `label_names`, unless `label_names` is
given, which then fixes the numbering and must list every label. A missing entry (None, or
NaN among names) is -1, unlabelled.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Mapping, Set
from typing import Any

import numpy as np

from sae_widgets.tensor_checks import check_dense, check_has_values

__all__ = ["MAX_LABEL", "check_label_names", "encode_labels", "label_array"]

MAX_LABEL = 2**20
"""Labels are class indices below this (about a million classes): views keep dense per-class
counts."""

_BOOL_NAMES = ["False", "True"]


def label_array(labels: Any, name: str = "labels") -> np.ndarray:
    """`labels` (numpy, torch, list, pandas) as a numpy array, or a TypeError naming it."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(labels, torch.Tensor):
        check_has_values(labels, name)
        check_dense(labels, name)
        labels = labels.detach().cpu()
        if labels.is_floating_point() and labels.dtype not in (torch.float32, torch.float64):
            labels = labels.double()  # bfloat16, float8: numpy has no such dtype
        return labels.numpy()
    if isinstance(labels, str | bytes):
        raise TypeError(f"{name} must hold one label per sample; got one {type(labels).__name__}")
    if isinstance(labels, Set | Mapping):  # no order to match the samples by
        raise TypeError(
            f"{name} must be an ordered sequence, one label per sample; got {type(labels).__name__}"
        )
    if isinstance(labels, np.ndarray):
        return labels
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError) as err:  # ragged lists and the like
        raise TypeError(
            f"{name} must be a 1-D sequence of labels; got {type(labels).__name__}"
        ) from err
    if array.dtype.kind == "U" and array.ndim == 1 and not all(isinstance(v, str) for v in labels):
        # numpy spells ["a", 3.5] as strings: kept as given, a mix `encode_labels` refuses
        array = np.empty(len(array), dtype=object)
        array[:] = list(labels)
    return array


def encode_labels(
    labels: Any, n: int, label_names: Any = None, name: str = "labels"
) -> tuple[np.ndarray, list[str] | None]:
    """(codes, names): `labels` as (n,) int64 class indices (-1: unlabelled) and the class
    names (`label_names` as strings; for labels that are names, their sorted distinct values
    when `label_names` is None). Errors name `name`, the value and what was expected."""
    array = label_array(labels, name)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(f"{name} must have one entry per sample (n={n}); got shape {array.shape}")
    names = check_label_names(label_names)
    kind: str = array.dtype.kind
    if kind == "O":
        array, kind = _object_kind(array, name)
    if kind == "b":
        return _indices(array.astype(np.int64), _BOOL_NAMES if names is None else names, name)
    if kind in "iu":
        return _indices(array, names, name)
    if kind == "f":
        if array.size and not (np.isfinite(array.min()) and np.isfinite(array.max())):
            raise ValueError(f"{name} contains NaN or infinite values")
        if np.all(array == np.round(array)):  # 0.0, 1.0, ...: class indices
            if array.size and array.max() >= MAX_LABEL:
                _too_large(array.max(), name)
            return _indices(array.astype(np.int64), names, name)
        return _categories(array, np.ones(n, dtype=bool), names, name)
    if kind in "US":
        if kind == "S":
            array = np.array([b.decode("utf-8", "replace") for b in array.tolist()], dtype=str)
        return _categories(array, np.ones(n, dtype=bool), names, name)
    if kind in "TO":  # numpy's StringDType; or objects that are names
        return _categories(array, np.ones(n, dtype=bool), names, name)
    raise TypeError(
        f"{name} must be class indices (integers) or class names (strings, bools, numbers); "
        f"got dtype {array.dtype}"
    )


def check_label_names(label_names: Any) -> list[str] | None:
    """`label_names` as a list of distinct strings (None stays None), or a TypeError (not a
    list) or ValueError (a name given twice)."""
    if label_names is None:
        return None
    if isinstance(label_names, str | bytes) or not hasattr(label_names, "__iter__"):
        raise TypeError(f"label_names must be a list of strings; got {label_names!r:.80}")
    try:
        names = [str(s) for s in label_names]
    except TypeError as err:  # a 0-d array or tensor: iterable in type only
        raise TypeError(f"label_names must be a list of strings; got {label_names!r:.80}") from err
    first: dict[str, int] = {}
    for i, label in enumerate(names):  # two classes of one name cannot be told apart
        if label in first:
            raise ValueError(
                f"label_names must be distinct: {label!r:.80} names class {first[label]} and "
                f"class {i}"
            )
        first[label] = i
    return names


def _too_large(value: Any, name: str) -> None:
    raise ValueError(
        f"{name} must be class indices below {MAX_LABEL} (-1 means no label); got {value}: "
        f"pass the classes as names (strings), or renumber them 0..C-1 first "
        "(np.unique(labels, return_inverse=True)) and pass the originals as label_names"
    )


def _indices(
    array: np.ndarray, names: list[str] | None, name: str
) -> tuple[np.ndarray, list[str] | None]:
    """Integer labels checked as class indices: -1 <= label < MAX_LABEL (and < len(names))."""
    if array.size:
        # before the int64 cast, which would wrap 2**63 into a negative number
        if int(array.max()) >= MAX_LABEL:
            _too_large(int(array.max()), name)
        if int(array.min()) < -1:
            raise ValueError(f"{name} must be >= -1 (-1 means no label); got {int(array.min())}")
    codes = array.astype(np.int64)
    if names is not None and codes.size and int(codes.max()) >= len(names):
        raise ValueError(
            f"label_names must name every label: {name} go up to {int(codes.max())} but only "
            f"{len(names)} names were given"
        )
    return codes, names


def _object_kind(array: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """An object array as the array its entries make (ints, bools, floats) and its kind, or
    itself with kind "O" when its entries are names (str, bytes, other hashable objects)."""
    values = array.tolist()
    present = [v for v in values if not _is_missing(v)]
    complete = len(present) == len(values)
    if present and complete and all(isinstance(v, bool | np.bool_) for v in present):
        return np.array(values, dtype=bool), "b"
    if present and all(_is_int(v) for v in present):  # None: unlabelled
        large = max(present, key=lambda v: abs(int(v)))
        if not -(2**62) < int(large) < 2**62:  # a Python int numpy cannot hold
            _too_large(large, name)
        return np.array([-1 if _is_missing(v) else int(v) for v in values], np.int64), "i"
    if present and complete and all(_kind_name(v) == "number" for v in present):
        return np.array(values, dtype=np.float64), "f"
    kinds = {_kind_name(v) for v in present}
    if len(kinds) > 1:
        raise TypeError(
            f"{name} must all be of one kind (class indices, or names of one type); got a mix "
            f"of {', '.join(sorted(kinds))}"
        )
    for v in present:
        try:
            hash(v)
        except TypeError as err:
            raise TypeError(
                f"{name} must be hashable class names or indices; got a {type(v).__name__}"
            ) from err
    return array, "O"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _kind_name(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, numbers.Real):
        return "number"
    if isinstance(value, str | np.str_):
        return "str"
    return type(value).__name__


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _categories(
    array: np.ndarray, present: np.ndarray, names: list[str] | None, name: str
) -> tuple[np.ndarray, list[str] | None]:
    """Labels that are names: coded by their place in `names`, or in their sorted distinct
    values (as strings) when `names` is None."""
    n = array.shape[0]
    if array.dtype.kind == "O":
        values = array.tolist()
        present = np.array([not _is_missing(v) for v in values], dtype=bool)
        kept = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
        distinct = list(dict.fromkeys(v for v, p in zip(kept, present) if p))
        try:
            distinct.sort()
        except TypeError:  # not comparable (e.g. tuples of mixed types): by their text
            distinct.sort(key=str)
        position = {v: i for i, v in enumerate(distinct)}
        inverse = np.array([position[v] if p else -1 for v, p in zip(kept, present)], np.int64)
        found = [str(v) for v in distinct]
    else:
        unique, inverse = np.unique(array, return_inverse=True)
        inverse = inverse.reshape(n).astype(np.int64)
        found = [str(v) for v in unique.tolist()]
    if len(found) > MAX_LABEL:
        raise ValueError(
            f"{name} hold {len(found)} distinct classes; at most {MAX_LABEL} are supported "
            "(class labels, not a continuous value per sample?)"
        )
    codes = np.where(present, inverse, -1).astype(np.int64)
    if names is None:
        return codes, found
    if len(set(names)) != len(names):
        duplicate = next(s for s in names if names.count(s) > 1)
        raise ValueError(
            f"label_names must be distinct to number {name} given as names; {duplicate!r} "
            "appears more than once"
        )
    place = {s: i for i, s in enumerate(names)}
    missing = [s for s in found if s not in place]
    if missing:
        shown = ", ".join(repr(s) for s in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ValueError(
            f"label_names must list every class of {name}: {shown}{more} not among "
            f"label_names {names!r:.200}"
        )
    remap = np.array([place[s] for s in found], dtype=np.int64)
    return np.where(codes >= 0, remap[np.maximum(codes, 0)], -1).astype(np.int64), names
