"""The one shared state that every view reads and writes.

Views never talk to each other: a click sets `unit`, a brush sets `samples`, a probe control
sets `probe_*`, and every view observes the traits it draws. This is plain traitlets
(`observe`, `traitlets.link`), not a widget, so it costs nothing to create in tests or scripts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from numbers import Integral
from typing import Any

import numpy as np
from numpy.typing import NDArray
from traitlets import Float, HasTraits, Int, List, TraitError, Unicode, observe, validate

from sae_widgets.analysis.checks import sorted_unique
from sae_widgets.wording import counted

__all__ = ["Selection", "SelectionError", "SelectionTypeError"]


class SelectionError(TraitError, ValueError):
    """A Selection trait got a value outside its valid range.

    It is both a `traitlets.TraitError` (what traitlets users catch) and a `ValueError`
    (what the rest of sae_widgets raises for bad input).
    """


class SelectionTypeError(TraitError, TypeError):
    """A Selection trait got a value of the wrong type (a `TraitError` and a `TypeError`)."""


class _TypeChecked:
    """Mixin: traitlets' own wrong-type error, raised as a `SelectionTypeError`."""

    def error(self, obj: Any, value: Any, error: Any = None, info: Any = None) -> Any:
        if error is not None:  # re-raising an element's error: keep it as it is
            return super().error(obj, value, error, info)  # type: ignore[misc]
        try:
            super().error(obj, value, error, info)  # type: ignore[misc]
        except TraitError as exc:
            raise SelectionTypeError(str(exc)) from None


def _is_bool(value: Any) -> bool:
    """A bool, numpy bool, or a bool array or tensor (whose dtype prints as "...bool")."""
    if isinstance(value, bool | np.bool_):
        return True
    return str(getattr(value, "dtype", "")).endswith("bool")


def _scalar(value: Any) -> Any:
    """A 0-d numpy array or torch tensor of real numbers as the Python number it holds (what
    `argmax` of the torch codes `transform` returns); anything else unchanged."""
    if getattr(value, "ndim", None) != 0 or not hasattr(value, "item") or _is_bool(value):
        return value
    if isinstance(value, np.ndarray | np.generic):
        return value.item() if value.dtype.kind in "iuf" else value
    if type(value).__module__.startswith("torch") and not value.is_complex():
        return value.item()
    return value


class _Index(_TypeChecked, Int):
    """An Int trait that also accepts numpy integers and 0-d integer arrays or tensors (the
    result of `np.argmax`, or of `torch.argmax` over the torch codes `transform` returns)."""

    def validate(self, obj: Any, value: Any) -> Any:
        if _is_bool(value):  # an int to Python, but never an index
            raise SelectionTypeError(
                f"The '{self.name}' trait expects an int index, not a bool; got {value!r}"
            )
        value = _scalar(value)
        if isinstance(value, Integral):
            value = int(value)
        return super().validate(obj, value)


class _IndexList(_TypeChecked, List):
    """A list of int indices that also accepts numpy arrays, tuples and ranges.

    Elements are checked in one vectorised pass rather than one trait validation per element,
    and the value is normalised to sorted, distinct indices here: a 100,000-sample brush
    costs a few milliseconds instead of hundreds. The owner keeps the validated array beside
    the list (see `Selection.sample_array`), so views need not convert the list back.
    """

    def validate(self, obj: Any, value: Any) -> Any:
        given = value  # named in errors as the caller passed it
        if type(value).__module__.startswith("torch") and hasattr(value, "numpy"):
            value = _tensor_numpy(value)  # 1-D index tensors: torch.topk(...).indices
        elif not isinstance(value, list | tuple | range | np.ndarray):
            if not hasattr(value, "__array__"):  # pandas Series and Index have one
                self.error(obj, value)
        array = np.asarray(value)
        if array.size == 0:
            array = np.zeros(0, dtype=np.int64)
        elif array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
            raise SelectionTypeError(  # strings, floats, masks: a wrong type, not a bad range
                f"samples must be a 1-D sequence of integer sample indices; got "
                f"{type(given).__name__} of dtype {array.dtype}: {_short(given)}"
            )
        elif array.ndim != 1:
            raise SelectionError(
                f"samples must be a 1-D sequence of integer sample indices; got "
                f"{type(given).__name__} of shape {array.shape}"
            )
        # `array` itself, not `given`: a tensor's or Series' memory is the caller's too
        return obj._validated_samples(array.astype(np.int64, copy=False), array)


def _grid_of(attribute: Any) -> NDArray[np.float64] | None:
    """The attribute's grid of values (1-D, finite, non-empty), or None if it has none."""
    try:
        grid = np.asarray(getattr(attribute, "values", None), dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        return None
    return grid


def _on_grid(value: float, grid: NDArray[np.float64]) -> float | None:
    """The grid value nearest `value`, or None when `value` is outside the grid's range
    (beyond a rounding error: a float32 copy of an end value is inside)."""
    low, high = float(grid.min()), float(grid.max())
    slack = 1e-6 * max(abs(low), abs(high), high - low, 1e-30)
    if not low - slack <= value <= high + slack:
        return None
    return float(grid[int(np.argmin(np.abs(grid - value)))])


def _tensor_numpy(tensor: Any) -> Any:
    """A torch tensor as numpy (any device; bfloat16 and other dtypes numpy lacks widened),
    so its dtype can be judged like an array's."""
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point():
        tensor = tensor.double()
    return tensor.numpy()


def _short(value: Any) -> str:
    """repr of `value`, cut to 60 characters (a brush can hold 10^6 samples)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Value(_TypeChecked, Float):
    """A Float trait that also accepts numpy floating scalars (e.g. read off an array)."""

    def validate(self, obj: Any, value: Any) -> Any:
        if _is_bool(value):  # a float to traitlets, but never an attribute's value
            raise SelectionTypeError(
                f"The '{self.name}' trait expects a number, not a bool; got {value!r}"
            )
        value = _scalar(value)
        if isinstance(value, np.floating | np.integer | Integral) and not isinstance(value, int):
            value = float(value)
        return super().validate(obj, value)


class _Name(_TypeChecked, Unicode):
    """A Unicode trait whose wrong-type error is a `SelectionTypeError`."""


class _ReadOnlyError(TraitError, AttributeError):
    """An assignment to a read-only Selection trait (an AttributeError, like a property's)."""


class _Count(Int):
    """A read-only Int trait: only its owner moves it (`set_trait`)."""

    def __set__(self, obj: Any, value: Any) -> None:
        raise _ReadOnlyError(
            f"{self.name} is read-only: Explorer.refresh() moves it; got an assignment of {value!r}"
        )


class Selection(HasTraits):
    """What the user is looking at: the focused unit, the selected samples, the probe.

    Parameters
    ----------
    n_units:
        Number of units of the SAE; `unit` must lie in ``[0, n_units)``.
    n_samples:
        Number of samples of the dataset; `samples` and `probe_sample` lie in ``[0, n_samples)``.
    attributes:
        Names a `probe_attribute` may take (the dataset's attributes). A mapping of names to
        `Attribute`s also gives each one's grid of `values`: `probe_value` is then snapped
        to the nearest grid value of the probed attribute (what a slider over that grid
        shows), and a value outside the grid's range is refused.

    A `probe_value` belongs to the `probe_attribute` it was given for: switching to another
    attribute forgets it (None: the probe starts at its default, the attribute's identity or
    the sample's own value), unless the new value is given in the same
    ``hold_trait_notifications`` batch.
    **traits:
        Initial trait values, validated like later assignments.

    Assigning an out-of-range index or an unknown attribute raises `SelectionError`, which is
    both a `traitlets.TraitError` and a `ValueError`, and leaves the trait unchanged; a value of
    the wrong type raises `SelectionTypeError` (a `TraitError` and a `TypeError`).
    `samples` is normalised to sorted, distinct indices (a set of samples has no order).
    `revision` is read-only: `new_revision` (called by `Explorer.refresh`) bumps it.
    """

    unit = _Index(None, allow_none=True, help="Focused unit index, or None when no unit is.")
    samples = _IndexList(
        help="Selected sample indices, sorted and distinct; empty means no selection."
    )
    probe_sample = _Index(
        None, allow_none=True, help="Sample whose attribute the probe varies, or None."
    )
    probe_attribute = _Name(
        None, allow_none=True, help="Name of the dataset attribute the probe varies, or None."
    )
    probe_value = _Value(
        None, allow_none=True, help="Current value of the probed attribute, or None."
    )
    revision = _Count(
        0,
        help="Counts the data behind the indices changing (Explorer.refresh after more "
        "training or a refit): every view redraws from the Explorer when it changes.",
    )

    def __init__(
        self, n_units: int, n_samples: int, attributes: Iterable[str] = (), **traits: Any
    ) -> None:
        for name, count in (("n_units", n_units), ("n_samples", n_samples)):
            if not isinstance(count, Integral) or isinstance(count, bool):
                raise TypeError(f"{name} must be an int; got {type(count).__name__}")
            if count < 1:
                raise ValueError(f"{name} must be at least 1; got {count}")
        if isinstance(attributes, str):
            raise TypeError("attributes must be an iterable of attribute names, not one string")
        names = list(attributes) if isinstance(attributes, Iterable) else None
        if names is None or not all(isinstance(a, str) for a in names):
            raise TypeError(f"attributes must be an iterable of names; got {attributes!r}")
        self._n_units = int(n_units)
        self._n_samples = int(n_samples)
        self._attributes = tuple(names)
        self._grids: dict[str, NDArray[np.float64]] = {}
        if isinstance(attributes, Mapping):
            for name, attribute in attributes.items():
                grid = _grid_of(attribute)
                if grid is not None:
                    self._grids[name] = grid
        self._sample_cache: tuple[list[int], NDArray[np.int64]] | None = None
        self._value_attribute: str | None = None  # the probe_attribute probe_value was given for
        super().__init__(**traits)

    @property
    def n_units(self) -> int:
        """Number of units a `unit` may index."""
        return self._n_units

    @property
    def n_samples(self) -> int:
        """Number of samples `samples` and `probe_sample` may index."""
        return self._n_samples

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attribute names a `probe_attribute` may take."""
        return self._attributes

    def clear(self) -> None:
        """Forget the focused unit, the selected samples and the probe (notifications batched)."""
        with self.hold_trait_notifications():
            self.unit = None
            self.samples = []
            self.probe_sample = None
            self.probe_attribute = None
            self.probe_value = None

    def new_revision(self, n_units: int | None = None) -> None:
        """The data behind the indices changed (the SAE was trained further or refit): take
        the new unit count, forget a focused unit now out of range, and bump `revision`, in
        one batch (every value is final before any observer runs)."""
        if n_units is None:
            n_units = self._n_units
        if not isinstance(n_units, Integral) or isinstance(n_units, bool):
            raise TypeError(f"n_units must be an int; got {type(n_units).__name__}")
        if n_units < 1:
            raise ValueError(f"n_units must be at least 1; got {n_units}")
        with self.hold_trait_notifications():
            self._n_units = int(n_units)
            # `revision` first: every view redraws from the new data before any other change
            # reaches a handler that would read the view's old columns or rows.
            self.set_trait("revision", self.revision + 1)
            if self.unit is not None and self.unit >= self._n_units:
                self.unit = None

    @validate("unit")
    def _check_unit(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and not 0 <= value < self._n_units:
            raise SelectionError(
                f"unit must be None or an int in [0, {self._n_units}); got {value}"
            )
        return value

    def _validated_samples(self, indices: NDArray[np.int64], given: Any) -> list[int]:
        """Check the range, sort and de-duplicate; remember the array beside the list."""
        if indices.size and (indices.min() < 0 or indices.max() >= self._n_samples):
            bad = indices[(indices < 0) | (indices >= self._n_samples)][0]
            raise SelectionError(
                f"samples must be indices in [0, {self._n_samples}); got {int(bad)}"
            )
        array = sorted_unique(indices)
        if isinstance(given, np.ndarray) and np.may_share_memory(array, given):
            array = array.copy()  # never keep (or freeze) the caller's array
        array.flags.writeable = False
        listed = array.tolist()
        self._sample_cache = (listed, array)
        return listed

    @property
    def sample_array(self) -> NDArray[np.int64]:
        """`samples` as a read-only, sorted int64 array: kept from validation, so reading it
        costs no conversion of a long list."""
        listed = self.samples
        cached = self._sample_cache
        if cached is None or cached[0] is not listed:  # the default, or a rolled-back hold
            array = np.asarray(listed, dtype=np.int64).reshape(-1)
            array.flags.writeable = False
            self._sample_cache = cached = (listed, array)
        return cached[1]

    @validate("probe_sample")
    def _check_probe_sample(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and not 0 <= value < self._n_samples:
            raise SelectionError(
                f"probe_sample must be None or an int in [0, {self._n_samples}); got {value}"
            )
        return value

    @validate("probe_attribute")
    def _check_probe_attribute(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and value not in self._attributes:
            known = ", ".join(repr(a) for a in self._attributes) or "none"
            raise SelectionError(
                f"probe_attribute must be None or one of the dataset's attributes ({known}); "
                f"got {value!r}"
            )
        return value

    @validate("probe_value")
    def _check_probe_value(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is None:
            return value
        if not math.isfinite(value):
            raise SelectionError(f"probe_value must be None or a finite float; got {value}")
        name = self.probe_attribute
        self._value_attribute = name
        grid = self._grids.get(name) if name is not None else None
        if grid is None:
            return value
        snapped = _on_grid(value, grid)
        if snapped is None:
            raise SelectionError(
                f"probe_value must lie in the range of {name!r}, [{grid.min():g}, "
                f"{grid.max():g}] (snapped to the nearest of its "
                f"{counted(len(grid), 'grid value')}); "
                f"got {value!r}"
            )
        return snapped

    @observe("probe_attribute")
    def _refit_probe_value(self, change: Any) -> None:
        """A value left by the previous attribute is forgotten (None: the probe's default, the
        new attribute's identity or the sample's own value, as on first display): 30 degrees
        of rotation mean nothing as a scale or a shape. A value given while no attribute was
        probed is snapped onto the new one's grid, or forgotten when outside it, so the
        Selection never holds a value no slider shows."""
        value, new = self.probe_value, change["new"]
        if value is None or self._value_attribute == new:
            return  # no value, or one given for the new attribute (in the same batch)
        if self._value_attribute is not None or new is None:
            self.probe_value = None
            return
        grid = self._grids.get(new)
        if grid is not None:
            self.probe_value = _on_grid(value, grid)

    def __repr__(self) -> str:
        n = len(self.samples)
        return (
            f"Selection(unit={self.unit}, samples=<{n} selected>, probe_sample="
            f"{self.probe_sample}, probe_attribute={self.probe_attribute!r}, "
            f"probe_value={self.probe_value})"
        )
