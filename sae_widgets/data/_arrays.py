"""Array conversion and validation shared by `Dataset` and `Attribute`: errors name the field."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from sae_widgets.data.checks import is_int
from sae_widgets.frames import numeric_frame
from sae_widgets.tensor_checks import check_dense, check_has_values


def _to_numpy(value: Any, name: str) -> np.ndarray:
    """Turn an array-like (numpy, torch tensor, list) into a numpy array."""
    # torch is looked up, not imported: a tensor can only exist if torch is already loaded,
    # and importing it here would make `import sae_widgets.data` cost a second.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        check_has_values(value, name)
        check_dense(value, name)  # torch's own error would not name the argument
        value = value.detach().cpu()
        numpy_floats = (torch.float16, torch.float32, torch.float64)
        if value.is_floating_point() and value.dtype not in numpy_floats:
            value = value.float()  # bfloat16, float8: numpy has no such dtype
        return value.numpy()
    if isinstance(value, np.ndarray):
        return value
    try:
        return numeric_frame(value, np.asarray(value))  # pandas' nullable dtypes: float64
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be array-like; got {type(value).__name__}") from err


def _check_finite(array: np.ndarray, name: str) -> None:
    if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
        return
    # min and max propagate NaN and expose infinities without a full-size boolean temporary
    if not (np.isfinite(array.min()) and np.isfinite(array.max())):
        raise ValueError(f"{name} contains NaN or infinite values")


def _as_float32(array: np.ndarray, name: str) -> np.ndarray:
    """A C-contiguous float32 copy/view of `array`, refusing NaN/inf and values float32 cannot
    hold (a float64 1e39 would otherwise become inf with only a RuntimeWarning)."""
    _check_finite(array, name)
    if np.issubdtype(array.dtype, np.floating) and array.dtype.itemsize > 4 and array.size:
        limit = float(np.finfo(np.float32).max)
        if max(-float(array.min()), float(array.max())) > limit:
            raise ValueError(
                f"{name} holds values beyond float32's range (|x| <= {limit:.3g}); rescale the data"
            )
    out = np.ascontiguousarray(array, dtype=np.float32)
    _check_finite(out, name)
    return out


def _normalise_indices(indices: Any, n: int, name: str = "indices") -> np.ndarray:
    """Validate sample indices (int array-like or boolean mask) into an int64 array in [0, n)."""
    if isinstance(indices, list | tuple) and any(isinstance(i, bool | np.bool_) for i in indices):
        if not all(isinstance(i, bool | np.bool_) for i in indices):  # [1, True] read True as 1
            raise TypeError(
                f"{name} must hold integers or be a boolean mask, not both; got {indices!r:.80}"
            )
    idx = _to_numpy(indices, name)
    if idx.ndim == 0 and idx.dtype == np.bool_:  # one bool is not a mask of n entries
        raise TypeError(f"{name} must be sample indices or a boolean mask of length {n}; got {idx}")
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
    if idx.dtype == object and all(is_int(i) for i in idx):  # Python ints (2**70 makes these)
        bad = next((int(i) for i in idx if not -n <= int(i) < n), None)
        if bad is not None:
            raise ValueError(f"{name} out of range: {bad} is not a sample index for n={n} samples")
        idx = idx.astype(np.int64)
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{name} must hold integers or booleans; got dtype {idx.dtype}")
    if idx.dtype == np.uint64 and int(idx.max()) >= n:  # int64 would wrap it to a negative
        raise ValueError(
            f"{name} out of range: {int(idx.max())} is not a sample index for n={n} samples"
        )
    idx = idx.astype(np.int64, copy=False)
    low, high = int(idx.min()), int(idx.max())
    if low < -n or high >= n:
        bad = low if low < -n else high
        raise ValueError(f"{name} out of range: {bad} is not a sample index for n={n} samples")
    return np.where(idx < 0, idx + n, idx)


def sample_rows(index: Any, n: int, name: str = "index", allow_empty: bool = False) -> np.ndarray:
    """The positions (int64, in [0, n)) that `index` picks, as Dataset indexing reads it: one
    int, a slice, an int array-like (negative counts from the end) or a boolean mask of
    length n. Errors name `name`, the value and what was expected."""
    if isinstance(index, bool | np.bool_):  # not read as index 1 or a 1-sample mask
        raise TypeError(
            f"{name} must be an int, slice, index array or boolean mask of length {n}; "
            f"got {index!r}"
        )
    if isinstance(index, slice):
        if index.step == 0:
            raise ValueError(f"{name}: a slice's step cannot be zero; got {index!r}")
        try:
            rows = np.arange(n)[index]
        except TypeError as err:  # slice("a") and the like
            raise TypeError(f"{name}: a slice of ints or None; got {index!r}") from err
    elif is_int(index):
        rows = _normalise_indices(np.array([index]), n, name)
    else:
        rows = _normalise_indices(index, n, name)
    if rows.size == 0 and not allow_empty:
        raise ValueError(f"{name} selects no samples: a dataset needs at least one sample")
    return rows.astype(np.int64, copy=False)
