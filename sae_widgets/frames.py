"""pandas DataFrames and Series of numbers as numpy arrays: shared by data/ (Dataset fields)
and sae/ (the estimator's inputs), which never import each other (DESIGN.md layering).

`np.asarray` of a frame whose columns use pandas' own dtypes (nullable "Float32", "Int64",
"boolean", or pyarrow-backed ones, as `read_csv(dtype_backend=...)` gives) is an object
array, which the numeric checks refuse. pandas is not imported here: a frame can only exist
if pandas is already loaded.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["numeric_frame"]


def numeric_frame(given: Any, array: np.ndarray) -> np.ndarray:
    """`array` (np.asarray of `given`) as float64 when `given` is a pandas DataFrame or
    Series whose columns are all real numbers or bools, missing values (pd.NA) as NaN, for
    the caller's NaN check to name; otherwise `array` unchanged (strings, objects and
    complex columns stay what the caller refuses)."""
    pandas = sys.modules.get("pandas")
    if array.dtype != object or pandas is None:
        return array
    if not isinstance(given, pandas.DataFrame | pandas.Series):
        return array
    dtypes = list(given.dtypes) if isinstance(given, pandas.DataFrame) else [given.dtype]
    types = pandas.api.types
    if not dtypes or not all(
        types.is_numeric_dtype(t) and not types.is_complex_dtype(t) for t in dtypes
    ):
        return array
    try:
        return np.asarray(given.to_numpy(dtype=np.float64, na_value=np.nan))
    except (TypeError, ValueError):
        return array
