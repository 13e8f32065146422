"""`Attribute`: one thing a probe can vary about a sample (e.g. a digit's rotation)."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from sae_widgets.data._arrays import _check_finite, _normalise_indices, _to_numpy
from sae_widgets.data.checks import check_float, check_int

# apply_fn(rows, value) -> float32 (len(rows), d): `rows` index the dataset the function was
# written for (the "base" rows); `Attribute` maps a subset's own rows onto them.
ApplyFn = Callable[[np.ndarray, float], np.ndarray]
# sweep_fn(rows, values) -> float32 (len(values), len(rows), d); optional fast path.
SweepFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _grid(values: Any) -> np.ndarray:
    """Attribute values as a float64 array, or a TypeError naming `values`."""
    try:
        return np.asarray(_to_numpy(values, "values"), dtype=np.float64)
    except (TypeError, ValueError) as err:
        if "meta" in str(err):
            raise
        raise TypeError(f"values must be a 1-D grid of numbers; got {values!r:.80}") from err


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
    limits: (low, high), the values `apply` and `sweep` accept, or None for any finite
        number; the grid and identity must lie inside. Rows holding NaN or inf are refused
        whatever the limits (a float32 cast overflows long before float64 does).

    Attributes
    ----------
    input_attribute: for an attribute made by `map` (e.g. by `collect_activations`), the
        attribute it was mapped from, whose `apply` gives the varied inputs (images
        flattened) before the model; None otherwise.
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
        limits: tuple[float, float] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string; got {name!r}")
        if not callable(apply_fn):
            raise TypeError(f"apply_fn must be callable; got {type(apply_fn).__name__}")
        if sweep_fn is not None and not callable(sweep_fn):
            raise TypeError(f"sweep_fn must be callable or None; got {type(sweep_fn).__name__}")
        grid = _grid(values)
        if grid.ndim != 1 or grid.size == 0:
            raise ValueError(f"values must be a non-empty 1-D grid; got shape {grid.shape}")
        _check_finite(grid, "values")
        if identity is not None:
            if isinstance(identity, bool) or not isinstance(identity, numbers.Real):
                raise TypeError(f"identity must be a number or None; got {identity!r:.80}")
            identity = float(identity)
            if not np.isfinite(identity):
                raise ValueError(f"identity must be finite or None; got {identity}")
            if not np.any(grid == identity):
                grid = np.sort(np.append(grid, identity))
        if n_samples is not None and (not isinstance(n_samples, int) or n_samples < 1):
            raise ValueError(f"n_samples must be a positive int or None; got {n_samples!r}")
        self.limits = _check_limits(limits, grid)
        self.name = name
        self.values = grid
        self.identity = identity
        self.n_samples = n_samples
        self.description = description
        self._apply_fn = apply_fn
        self._sweep_fn = sweep_fn
        # `map`'s source: this attribute's inputs before `fn` (None for a base attribute)
        self.input_attribute: Attribute | None = None
        # rows of the base dataset that this attribute's samples are (None: all, in order)
        self._rows: np.ndarray | None = None

    # ----------------------------------------------------------------------------- evaluation

    def _base_rows(self, indices: Any) -> np.ndarray:
        idx = _normalise_indices(indices, self._bound_size())
        if idx.size == 0:
            raise ValueError(f"indices must select at least one sample for {self.name!r}")
        return idx if self._rows is None else self._rows[idx]

    def _check_value(self, value: Any, name: str = "value") -> float:
        """`value` as a float inside `limits`; checked before any cast to float32, so the
        message shows the number passed (1e-300, not the 0.0 it would become)."""
        if isinstance(value, str | bytes):
            raise TypeError(f"{name} must be a number; got {type(value).__name__}")
        try:
            v = float(value)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a number; got {type(value).__name__}") from err
        low, high = self.limits if self.limits is not None else (None, None)
        return check_float(v, f"{name} for attribute {self.name!r}", low, high)

    def _finite_rows(self, out: np.ndarray, value: Any) -> np.ndarray:
        # a float32 overflow (or a model's) must not reach a view or an SAE as NaN rows
        if out.size and not (np.isfinite(out.min()) and np.isfinite(out.max())):
            raise ValueError(
                f"attribute {self.name!r}: value {value!r} gives rows with NaN or infinite "
                "values; pick a value closer to the attribute's grid "
                f"({self.values.min():g}..{self.values.max():g})"
            )
        return out

    def _numbers(self, result: Any, fn: str) -> np.ndarray:
        """What a user's function returned, as float32 (a tensor, bfloat16 too, or a list);
        strings and other non-numbers are a TypeError naming the attribute."""
        out = _to_numpy(result, f"attribute {self.name!r}: {fn}'s result")
        if out.dtype.kind not in "biuf":
            raise TypeError(
                f"attribute {self.name!r}: {fn} must return numbers; got dtype {out.dtype}"
            )
        with np.errstate(over="ignore"):  # an overflow to inf is refused by `_finite_rows`
            return out.astype(np.float32, copy=False)

    def apply(self, indices: Any, value: float) -> np.ndarray:
        """X rows of samples `indices` with this attribute set to `value`: float32 (m, d)."""
        rows = self._base_rows(indices)
        v = self._check_value(value)
        out = self._numbers(self._apply_fn(rows, v), "apply_fn")
        if out.ndim != 2 or out.shape[0] != rows.shape[0]:
            raise ValueError(
                f"attribute {self.name!r}: apply_fn returned shape {out.shape}, expected "
                f"({rows.shape[0]}, d)"
            )
        return self._finite_rows(out, v)

    def sweep(self, indices: Any, values: Any = None) -> np.ndarray:
        """`apply` for every value of a grid (default `self.values`): float32 (v, m, d)."""
        rows = self._base_rows(indices)
        if values is None:
            grid = self.values
        else:
            grid = _grid(values).reshape(-1)
            if grid.size == 0:
                raise ValueError("values must hold at least one value")
            _check_finite(grid, "values")
            for v in (grid.min(), grid.max()):  # the extremes decide the range check
                self._check_value(float(v), "values")
        if self._sweep_fn is not None:
            out = self._numbers(self._sweep_fn(rows, grid), "sweep_fn")
        else:
            out = np.stack(
                [self._numbers(self._apply_fn(rows, float(v)), "apply_fn") for v in grid]
            )
        if out.ndim != 3 or out.shape[:2] != (grid.size, rows.shape[0]):
            raise ValueError(
                f"attribute {self.name!r}: sweep returned shape {out.shape}, expected "
                f"({grid.size}, {rows.shape[0]}, d)"
            )
        for i, v in enumerate(grid):  # name the first value whose rows overflow
            self._finite_rows(out[i], float(v))
        return out

    # ---------------------------------------------------------------------------- derivation

    def _copy(self) -> Attribute:
        new = Attribute.__new__(Attribute)
        new.__dict__.update(self.__dict__)
        return new

    def bind(self, n_samples: int) -> Attribute:
        """This attribute with `n_samples` set (what `Dataset` does for unbound attributes)."""
        n_samples = check_int(n_samples, "n_samples", 1)
        new = self._copy()
        new.n_samples = n_samples
        if self.input_attribute is not None and self.input_attribute.n_samples is None:
            new.input_attribute = self.input_attribute.bind(n_samples)
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
        if self.input_attribute is not None:  # the inputs follow the same samples
            new.input_attribute = self.input_attribute._subset_checked(idx)
        return new

    def map(self, fn: Callable[[np.ndarray], np.ndarray], name: str | None = None) -> Attribute:
        """An attribute whose rows are `fn(self.apply(...))`, e.g. the varied input passed
        through a model. `fn` maps float32 (m, d_in) to (m, d_out) and must treat rows
        independently (sweeps call it once on all values' rows stacked)."""
        if not callable(fn):
            raise TypeError(f"fn must be callable (rows -> rows); got {type(fn).__name__}")
        mapped = Attribute(  # partials of module-level functions: pickles when `fn` does
            name or self.name,
            self.values,
            partial(_mapped_apply, self, fn),
            identity=self.identity,
            n_samples=self.n_samples,
            sweep_fn=partial(_mapped_sweep, self, fn),
            description=self.description,
            limits=self.limits,
        )._with_rows(self._rows)
        # The varied *input* stays reachable (e.g. the rotated digit before the model), so a
        # view can draw it.
        mapped.input_attribute = self
        return mapped

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


def _mapped_apply(
    base: Attribute, fn: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, value: float
) -> np.ndarray:
    return fn(base._raw_apply(rows, value))


def _mapped_sweep(
    base: Attribute, fn: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, grid: np.ndarray
) -> np.ndarray:
    varied = base._raw_sweep(rows, grid)
    out = np.asarray(fn(varied.reshape(-1, varied.shape[-1])))
    return out.reshape(grid.size, rows.shape[0], -1)


def _check_limits(limits: Any, grid: np.ndarray) -> tuple[float, float] | None:
    """`limits` as (low, high) floats holding every grid value, or None."""
    if limits is None:
        return None
    if not isinstance(limits, tuple | list) or len(limits) != 2:
        raise TypeError(f"limits must be a (low, high) pair of numbers or None; got {limits!r}")
    low = check_float(limits[0], "limits[0]")
    high = check_float(limits[1], "limits[1]", low)
    if grid.min() < low or grid.max() > high:
        raise ValueError(
            f"values must lie inside limits [{low:g}, {high:g}]; got {grid.min():g}..{grid.max():g}"
        )
    return low, high
