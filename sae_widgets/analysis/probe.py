"""Partial dependence of the units on one input attribute (What-If-Tool style).

Vary one attribute of a sample (or of each sample of a set) over a grid, encode all the varied
inputs in one batch, and read off which units respond: the response matrix is (grid values x
units), averaged over the samples of a set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from sae_widgets.analysis.checks import check_indices, check_positive_int
from sae_widgets.analysis.summary import top_entries
from sae_widgets.analysis.threads import threads_for_batch
from sae_widgets.memory import check_memory

__all__ = ["Autoencoder", "ProbeResult", "SweepAttribute", "probe_attribute"]


@runtime_checkable
class Autoencoder(Protocol):
    """What the probe needs from an SAE: dense encode and decode of numpy batches."""

    def transform(self, X: Any) -> Any: ...

    def inverse_transform(self, Z: Any) -> Any: ...


@runtime_checkable
class SweepAttribute(Protocol):
    """What the probe needs from a dataset attribute (`sae_widgets.Attribute`)."""

    name: str
    values: Any

    def sweep(self, indices: Any, values: Any = None) -> Any: ...


@dataclass(frozen=True)
class ProbeResult:
    """How every unit responds as one attribute of some samples is varied."""

    attribute: str
    samples: NDArray[np.int64]
    """The samples varied; the response is their mean."""
    values: NDArray[np.float64]
    """(n_values,) the attribute's grid."""
    response: NDArray[np.float32]
    """(n_values, n_units) unit activations at each grid value (mean over the samples)."""
    sensitivity: NDArray[np.float32]
    """(n_units,) max - min of each unit's response curve over the grid."""
    ranked_units: NDArray[np.int64]
    """Units that respond at all (sensitivity > 0), most sensitive first (ties: lower unit)."""
    inputs: NDArray[np.float32]
    """(n_values, d) the varied input of the first sample at each grid value."""
    reconstructions: NDArray[np.float32]
    """(n_values, d) the SAE's reconstruction of each row of `inputs`."""


def _check_values(values: Any, bytes_per_value: int) -> NDArray[np.float64]:
    """The grid as float64, refused where one sample's sweep would not fit in memory (a
    grid of 10**8 values ran ~10 s a million values before numpy's MemoryError)."""
    try:
        grid = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError, NotImplementedError) as err:
        raise TypeError(f"values must be a 1-D grid of numbers; got {values!r:.80}") from err
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"values must be a non-empty 1-D grid; got shape {grid.shape}")
    check_memory(
        grid.size * bytes_per_value,
        f"a probe over {grid.size:,} values",
        "pass a coarser grid of values",
    )
    if not np.isfinite(grid).all():
        raise ValueError("values must be finite; got NaN or infinity")
    return grid


def probe_attribute(
    sae: Autoencoder,
    attribute: SweepAttribute,
    samples: Any,
    n_samples: int,
    values: Any = None,
    max_batch_rows: int = 4096,
) -> ProbeResult:
    """Sweep `attribute` over `values` for `samples` and measure every unit's response.

    Parameters
    ----------
    sae:
        A fitted SAE (``transform`` / ``inverse_transform`` on numpy arrays).
    attribute:
        The attribute to vary; its ``sweep(indices, values)`` returns the varied inputs with
        shape (n_values, len(indices), d).
    samples:
        One sample index, or a sequence of them (the response is averaged over them).
    n_samples:
        Dataset size, to check the indices.
    values:
        Grid of attribute values; the attribute's default grid when None.
    max_batch_rows:
        Upper bound on rows encoded at once; one sample's whole sweep is always one batch,
        larger sets are encoded a slice of samples at a time so memory stays bounded.
    """
    if not isinstance(attribute, SweepAttribute):
        raise TypeError(
            f"attribute must provide name, values and sweep(); got {type(attribute).__name__}"
        )
    chosen = check_indices([samples] if np.ndim(samples) == 0 else samples, n_samples, "samples")
    if len(chosen) == 0:
        raise ValueError("samples must name at least one sample; got none")
    # one sample's sweep is one batch: its inputs and codes, the float64 sums, the response
    n_units, width = (
        int(getattr(sae, "n_units", 0) or 0),
        int(getattr(sae, "n_features_in_", 0) or 0),
    )
    grid = _check_values(attribute.values if values is None else values, 4 * width + 16 * n_units)
    max_batch_rows = check_positive_int(max_batch_rows, "max_batch_rows")

    per_slice = max(1, max_batch_rows // len(grid))
    total: NDArray[np.float64] | None = None
    first_inputs: NDArray[np.float32] | None = None
    first_codes: NDArray[np.float32] | None = None
    for start in range(0, len(chosen), per_slice):
        part = chosen[start : start + per_slice]
        varied = np.asarray(attribute.sweep(part, grid), dtype=np.float32)
        if varied.ndim != 3 or varied.shape[:2] != (len(grid), len(part)):
            raise ValueError(
                f"attribute {attribute.name!r} sweep returned shape {varied.shape}; expected "
                f"({len(grid)}, {len(part)}, d)"
            )
        flat = varied.reshape(-1, varied.shape[2])
        with threads_for_batch(len(flat)):
            codes = np.asarray(sae.transform(flat), dtype=np.float32)
        codes = codes.reshape(len(grid), len(part), -1)
        if first_inputs is None:
            first_inputs, first_codes = varied[:, 0], codes[:, 0]
        part_sum = codes.sum(axis=1, dtype=np.float64)
        total = part_sum if total is None else total + part_sum
    assert total is not None and first_inputs is not None and first_codes is not None

    response = (total / len(chosen)).astype(np.float32)
    sensitivity = response.max(axis=0) - response.min(axis=0)
    responsive = np.flatnonzero(sensitivity > 0)
    ranked, _ = top_entries(responsive, sensitivity[responsive], len(responsive))
    with threads_for_batch(len(first_codes)):
        reconstructions = np.asarray(sae.inverse_transform(first_codes), dtype=np.float32)
    return ProbeResult(
        attribute=str(attribute.name),
        samples=chosen,
        values=grid,
        response=response,
        sensitivity=sensitivity,
        ranked_units=ranked,
        inputs=np.ascontiguousarray(first_inputs),
        reconstructions=reconstructions,
    )
