"""Scalar argument checks of the data layer (built-in datasets, corpora): each error names the
argument, the value and what was expected. Array checks are in `_arrays`."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from sae_widgets.memory import check_memory

__all__ = [
    "SEED_LIMIT",
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_memory",
    "check_seed",
    "is_int",
]

SEED_LIMIT = 2**63


def is_int(value: Any) -> bool:
    """An integer of any kind (Python, numpy), but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def check_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int in [low, high]; bools and floats are refused (TypeError)."""
    if not is_int(value):
        raise TypeError(f"{name} must be an integer{_range(low, high)}; got {value!r}")
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"{name} must be an integer{_range(low, high)}; got {number!r}")
    return number


def check_seed(value: Any, name: str = "seed") -> int:
    """A random seed: an integer in [0, 2**63)."""
    return check_int(value, name, 0, SEED_LIMIT - 1)


def check_float(
    value: Any, name: str, low: float | None = None, high: float | None = None
) -> float:
    """`value` as a finite float in [low, high]; bools and non-numbers are refused."""
    expected = f"{name} must be a finite number{_range(low, high)}; got {value!r}"
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(expected)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(expected)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(expected)
    return number


def check_bool(value: Any, name: str) -> bool:
    """A bool (True/False, numpy's too); strings and numbers are refused, not truth-tested."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_choice(value: Any, name: str, options: Sequence[str]) -> str:
    """One of `options` (strings)."""
    if not isinstance(value, str) or value not in options:
        error = ValueError if isinstance(value, str) else TypeError
        listed = (
            " or ".join(map(repr, options))
            if len(options) == 2
            else ("one of " + ", ".join(map(repr, options)))
        )
        raise error(f"{name} must be {listed}; got {value!r}")
    return value


def _range(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" >= {low}"
    if low is None:
        return f" <= {high}"
    return f" in [{low}, {high}]"
