"""Input checks shared by the analysis functions: one wording for every bad index."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from numpy.typing import NDArray


def check_index(value: Any, size: int, name: str) -> int:
    """Return `value` as an int in ``[0, size)``, or raise naming the argument `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    index = int(value)
    if not 0 <= index < size:
        raise ValueError(f"{name} must be in [0, {size}); got {index}")
    return index


def check_indices(values: Any, size: int, name: str) -> NDArray[np.int64]:
    """Return `values` as a 1-D int64 array of indices in ``[0, size)``, order kept.

    Accepts any integer sequence or array (an empty one too); raises naming `name` otherwise.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of indices; got shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integer indices; got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= size:
        bad = low if low < 0 else high
        raise ValueError(f"{name} must hold indices in [0, {size}); got {bad}")
    return array


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return `value` as an int >= `minimum`, or raise naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {int(value)}")
    return int(value)
