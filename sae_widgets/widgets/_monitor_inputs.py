"""What a TrainingMonitor is given, checked: its intervals, each logged step's metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sae_widgets.data.checks import check_float

__all__ = ["check_seconds", "is_number", "step_of"]


def step_of(metrics: Any) -> int:
    """The step number of a logged step's metrics dict (what SAE.fit passes a callback)."""
    if not isinstance(metrics, Mapping):
        raise TypeError(
            f"metrics: expected a dict of one logged step's metrics, got {type(metrics).__name__}"
        )
    if "step" not in metrics:
        keys = sorted(map(str, metrics))
        raise ValueError(f"metrics: expected a 'step' entry (the step number); got keys {keys}")
    step = metrics["step"]
    if not is_number(step):
        raise TypeError(f"metrics: 'step' must be a number; got {step!r} ({type(step).__name__})")
    if not math.isfinite(step):
        raise ValueError(f"metrics: 'step' must be finite; got {step!r}")
    return int(step)


def check_seconds(value: Any, name: str) -> float:
    """A finite number of seconds >= 0 (TypeError for a non-number, ValueError otherwise)."""
    return check_float(value, f"{name} (seconds)", 0.0)


def is_number(value: Any) -> bool:
    """One real number: a Python or numpy int or float, or a 0-d numpy array or torch tensor
    of one (a user's own loop logs `loss.detach()`); never a bool."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        return not isinstance(value, bool)
    if getattr(value, "ndim", None) != 0:
        return False
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "iuf"
    if type(value).__module__.startswith("torch") and hasattr(value, "is_floating_point"):
        dtype = str(value.dtype)
        return not (value.is_complex() or dtype.endswith("bool"))
    return False
