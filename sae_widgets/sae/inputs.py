"""Checks at the estimator's boundary: what `SAE` accepts as data, codes, chunk sizes and
callbacks, turned into float32 tensors or refused with an error naming the argument."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from sae_widgets.frames import numeric_frame
from sae_widgets.sae.batches import is_row_source
from sae_widgets.tensor_checks import check_dense, check_has_values

# Inputs beyond this magnitude would overflow float32 in the encoder's matmul; smaller ones
# (1e20 too) train like any others, as fit folds an input scale into the weights.
MAX_ABS_INPUT = 1e30
# Codes (Z) may be any float32: transform gives codes above 1e30 for inputs near it.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def real_array(X: Any, name: str, limit: float = MAX_ABS_INPUT) -> np.ndarray:
    """X as a C-contiguous float32 numpy array; strings, objects and complex are TypeErrors;
    values beyond `limit` in magnitude a ValueError."""
    try:
        array = X if isinstance(X, np.ndarray) else np.asarray(X)
    except (TypeError, ValueError) as err:  # ragged lists and the like
        raise TypeError(
            f"{name} must be an (n_samples, n_features) numpy array, torch tensor or Dataset "
            f"of numbers; got {type(X).__name__} ({err})"
        ) from err
    array = numeric_frame(X, array)  # pandas' nullable and pyarrow dtypes: float64
    if array.dtype.kind == "c":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.dtype.kind not in "fiub":
        raise TypeError(
            f"{name} must hold numbers (a float, integer or bool array); got dtype "
            f"{array.dtype} (convert strings or objects with np.asarray(..., dtype=float))"
        )
    check_magnitude(array, name, limit)
    # reshaped: ascontiguousarray makes a scalar 1-D, and the error would say "shape (1,)"
    return np.ascontiguousarray(array, dtype=np.float32).reshape(array.shape)


def weight_tensor(
    value: Any, name: str, shape: tuple[int, ...] | None, *, finite: bool = True
) -> Tensor:
    """A user's weight (numpy, torch or lists) as a finite float32 tensor (of `shape` unless
    None): NaN, infinity and float64 values past float32's range (which the cast made inf)
    are refused, as a checkpoint's are (unless `finite` is False: the caller checks)."""
    if torch.is_tensor(value):
        check_has_values(value, name)
        check_dense(value, name)
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers; got dtype {value.dtype}")
        tensor = value.detach()
    else:
        array = real_array_of(value, name)
        tensor = torch.from_numpy(np.array(array, dtype=np.float64))  # a copy; 0-d stays 0-d
    if shape is not None and tuple(tensor.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(tensor.shape)}")
    tensor = tensor.float()
    if finite and not bool(torch.isfinite(tensor).all()):
        raise ValueError(
            f"{name} holds NaN or infinite values (or values beyond float32's range, 3.4e38)"
        )
    return tensor


def threshold_values(value: Any, n_units: int) -> Tensor:
    """A user's threshold (a number, or one per unit) as a float32 (n_units,) tensor, checked
    once: NaN, infinity and values below 0 are refused (a unit fires where its
    pre-activation exceeds both its threshold and 0, so a threshold below 0 would act as 0)."""
    if isinstance(value, bool | np.bool_) or (torch.is_tensor(value) and value.dtype == torch.bool):
        raise TypeError(f"threshold must be a number or {n_units} numbers; got a bool")
    tensor = weight_tensor(value, "threshold", None, finite=False)
    scalar = tensor.ndim == 0
    if scalar:
        tensor = tensor.expand(n_units)
    elif tuple(tensor.shape) != (n_units,):
        raise ValueError(
            f"threshold must be a number or have shape ({n_units},), got {tuple(tensor.shape)}"
        )
    bad = ~(torch.isfinite(tensor) & (tensor >= 0))
    if bool(bad.any()):  # one wait for a GPU tensor, here at call time only
        unit = int(bad.nonzero()[0, 0])
        raise ValueError(
            "threshold must be finite and at least 0 (below 0 it would act as 0); got "
            f"{float(tensor[unit]):g}" + ("" if scalar else f" for unit {unit}")
        )
    return tensor


def positive_factor(value: Any, name: str) -> float:
    """A finite number above 0 (a Python or numpy number, or a one-value tensor), as a float."""
    if torch.is_tensor(value) and value.numel() == 1 and not value.dtype == torch.bool:
        value = value.item()  # one wait for a GPU tensor, at call time only
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number above 0; got {type(value).__name__}")
    factor = float(value)
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"{name} must be a finite number above 0; got {value!r}")
    return factor


def real_array_of(value: Any, name: str) -> np.ndarray:
    """`value` as a numpy array of real numbers (any shape), or a TypeError naming `name`."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of numbers; got {type(value).__name__}") from err
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers; got dtype {array.dtype}")
    return array


def shared_tensor(array: np.ndarray) -> Tensor:
    """A tensor sharing `array`'s memory (its strides must not be negative). A read-only
    array is shared too, without torch's warning that writing to it is undefined: tensors
    made here are only read (the estimator never writes into its input)."""
    if array.flags.writeable:
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
        return torch.from_numpy(array)


def _shareable(array: np.ndarray) -> bool:
    return all(stride >= 0 for stride in array.strides)


# Tensor dtypes torch's min/max/aminmax refuse ("min_all" not implemented for 'UInt16'):
# the wide unsigned integers and the float8 formats, which float32 holds exactly or widens.
_NO_MIN_DTYPES = frozenset(
    getattr(torch, name)
    for name in (
        "uint16",
        "uint32",
        "uint64",
        "float8_e4m3fn",
        "float8_e4m3fnuz",
        "float8_e5m2",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
    )
    if hasattr(torch, name)
)


def _extremes(array: Any) -> tuple[float, float]:
    """(min, max) of a non-empty array or tensor, NaN if it holds one: one pass for floats
    (torch.aminmax; min then max read the data twice), two otherwise."""
    floats = array if torch.is_tensor(array) else None
    if floats is not None and floats.dtype in _NO_MIN_DTYPES:
        floats = floats.to(torch.float32)  # torch has no min/max for these; float32 holds them
    if floats is None and array.dtype in (np.float32, np.float64) and _shareable(array):
        floats = shared_tensor(np.asarray(array))  # no copy (torch takes no negative strides)
    if floats is not None and floats.is_floating_point() and floats.device.type == "cpu":
        lo, hi = torch.aminmax(floats)
        return float(lo), float(hi)
    return float(array.min()), float(array.max())  # min/max propagate NaN


def check_magnitude(array: Any, name: str, limit: float = MAX_ABS_INPUT) -> None:
    """ValueError for NaN, inf or values whose size float32 arithmetic cannot take (beyond
    `limit`: 1e30 for inputs, float32's largest for codes)."""
    if torch.is_tensor(array):
        if array.numel() == 0 or array.dtype == torch.bool:
            return
    elif array.size == 0 or array.dtype == np.bool_:
        return
    lo, hi = _extremes(array)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinite values")
    peak = max(-lo, hi)
    if peak > limit:
        raise ValueError(
            f"{name} holds values as large as {peak:.3g}; at most {limit:.3g} in "
            f"magnitude is supported (float32 arithmetic would overflow): divide {name} by a "
            "constant first"
        )


def data_of(X: Any) -> Any:
    """The array inside a Dataset (anything with an `.X` that is not itself an array)."""
    if not isinstance(X, np.ndarray | Tensor) and hasattr(X, "X"):
        return X.X
    return X


def _check_width(width: int, expected: int | None, name: str) -> None:
    if expected is not None and width != expected:
        raise ValueError(f"{name} has {width} features, but the SAE was fitted on {expected}")


def as_rows(
    X: Any, name: str, expected: int | None, device: Callable[[], torch.device]
) -> Tensor | Any:
    """X as `as_tensor` gives it, or a row source on disk (an ActivationStore's X), checked
    for shape but left where it is (its rows were checked finite when written).

    expected: the fitted width, or None for any; device: the device to put rows on (called
    only when needed, so a bad device string is reported before any reading)."""
    X = data_of(X)
    if not is_row_source(X):
        return as_tensor(X, name, expected, device())
    if len(X.shape) != 2 or min(X.shape) == 0:
        raise ValueError(f"{name} must be a non-empty 2-D store; got shape {tuple(X.shape)}")
    _check_width(X.shape[1], expected, name)
    device()
    return X


def as_tensor(X: Any, name: str, expected: int | None, device: torch.device) -> Tensor:
    """X as a finite float32 (n, d) tensor on `device`; d must equal `expected` if given."""
    X = data_of(X)
    if torch.is_tensor(X):
        check_has_values(X, name)
        check_dense(X, name)
        if X.is_complex():  # any real dtype converts, as it does for numpy input
            raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
        tensor = X.detach()
    elif sp.issparse(X):
        raise TypeError(f"{name} must be a dense array, tensor or Dataset, not a sparse matrix")
    else:  # real_array checks the values before converting them (one pass, not two)
        tensor = shared_tensor(real_array(X, name))
    if tensor.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got shape {tuple(tensor.shape)}"
        )
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(tensor.shape)}")
    if torch.is_tensor(X):
        check_magnitude(tensor, name)
    _check_width(tensor.shape[1], expected, name)
    return tensor.to(device=device, dtype=torch.float32)


def as_codes(Z: Any, n_units: int, device: torch.device) -> Tensor:
    """Unit activations Z (numpy or torch, dense) as a finite float32 (n, n_units) tensor."""
    if torch.is_tensor(Z):
        check_has_values(Z, "Z")
        if Z.is_complex():
            raise TypeError(f"Z must hold real numbers, got dtype {Z.dtype}")
        # sparse codes (COO, CSR) are accepted, as scipy's are: (n, n_units) dense is small
        Z_t = Z.detach() if Z.layout == torch.strided else Z.detach().to_dense()
    else:
        Z_t = shared_tensor(real_array(Z, "Z", FLOAT32_MAX))
    if Z_t.ndim != 2 or Z_t.shape[1] != n_units:
        raise ValueError(f"Z must have shape (n, {n_units}), got {tuple(Z_t.shape)}")
    Z_t = Z_t.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(Z_t).all()):
        raise ValueError("Z contains NaN or infinite values")
    return Z_t


def sparse_codes(Z: Any, n_units: int) -> sp.csr_matrix:
    """A scipy sparse Z (any format: csr, coo, dok, lil...) as CSR, checked: (n, n_units),
    real and finite float32 values (as dense Z is)."""
    if Z.ndim != 2 or Z.shape[1] != n_units:
        raise ValueError(f"Z must have shape (n, {n_units}), got {Z.shape}")
    if Z.dtype.kind == "c":  # the imaginary part would be dropped with a ComplexWarning
        raise TypeError(f"Z must hold real numbers, got dtype {Z.dtype}")
    csr = sp.csr_matrix(Z)  # dok and lil have no flat .data to check
    check_magnitude(csr.data, "Z", FLOAT32_MAX)
    return csr


def check_reconstruction(X_hat: Any) -> None:
    """ValueError naming Z when its reconstruction overflowed float32 (codes of any finite
    size are taken, so that inverse_transform accepts every code transform gives)."""
    finite = torch.isfinite(X_hat).all() if torch.is_tensor(X_hat) else np.isfinite(X_hat).all()
    if not bool(finite):
        raise ValueError(
            f"Z is too large: its reconstruction overflows float32 (beyond {FLOAT32_MAX:.3g}); "
            "divide Z by a constant first"
        )


def check_chunk_size(chunk_size: Any) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise TypeError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return min(int(chunk_size), 2**62)  # any chunk past the data is the whole data (torch: int64)


def callback_list(callbacks: Any) -> list[Any]:
    """None, one callable or an iterable of callables, as a list."""
    if callbacks is None:
        return []
    if callable(callbacks):
        return [callbacks]
    if not isinstance(callbacks, Iterable) or isinstance(callbacks, str | bytes):
        raise TypeError(
            f"callbacks must be a callable or a list of callables, got {type(callbacks).__name__}"
        )
    out = list(callbacks)
    for cb in out:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables, got {type(cb)}")
    return out


def output_like(result: Tensor, like: Any) -> Any:
    """torch in -> torch out on the input's device; anything else -> numpy."""
    like = data_of(like)
    if torch.is_tensor(like):
        return result.to(like.device)
    return result.cpu().numpy()
