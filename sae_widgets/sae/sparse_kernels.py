"""Compiled (numba) CPU kernels of the top-k selections: per-row top-k and the batch top-k.

`torch.topk` over short rows and over B x n_units is the slowest part of a sparse step and
of encoding on CPU (benchmarks/train_throughput.py, encode_throughput.py print the profile).
These kernels read each cache-resident row once or twice:
- `row_topk`: per row, the maxima of n_units / G strided groups (vectorised), a cut-off t
  that at least k maxima reach (so every top-k value is >= t): the k-th largest maximum,
  ranked among the few above a bound from k subsets of them; then the exact top k among
  the values >= t of those groups (~k + 1 candidates). Optionally writes the codes in place
  (dense: the row zeroed but for its k ReLU'd winners) or as unit-sorted CSR parts.
- `batch_topk`: the k * B largest of a batch from one pass that keeps only the values above
  a cut-off guessed from a sample of rows, then an exact selection among those.
Each returns None where it cannot be exact (NaN values, a guess that kept too few or too
many) or numba is missing; callers then run the torch path.
Each kernel call runs on one thread; `row_topk` and the collecting pass of `batch_topk` split
the rows between the threads of `pool()` when torch has several (a serial step gives them
the matmul's count, see sparse_ops_threads), with the same results on any split.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.profiler import record_function

from sae_widgets.sae import device_paths

if TYPE_CHECKING:
    from sae_widgets.sae.bf16_preacts import Refinement


def bits(approx: Tensor) -> np.ndarray:
    """A bfloat16 tensor's bits as a uint16 array (numba has no bfloat16)."""
    return approx.detach().view(torch.int16).numpy().view(np.uint16)


@cache
def _kernels() -> dict[str, Any] | None:
    """The compiled kernels, or None without numba (compiled on first use, cached on disk)."""
    try:
        from sae_widgets.sae import _numba_kernels, _numba_refine
    except Exception as error:  # no numba, or it cannot run here: the torch paths run
        warnings.warn(
            f"sae_widgets: compiled top-k kernels unavailable ({error!r}); using torch.topk",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return {
        "rows": _numba_kernels.topk_rows_kernel,
        "above": _numba_kernels.collect_above,
        "gate_counts": _numba_kernels.gate_counts,
        "gate_collect": _numba_kernels.gate_collect,
        "gate_dense": _numba_kernels.gate_dense,
        "refined_rows": _numba_refine.refined_topk_rows,
        "refined_above": _numba_refine.refined_collect_above,
        "refined_gate": _numba_refine.refined_gate_rows,
    }


def available(tensor: Tensor) -> bool:
    """Whether the kernels apply: a CPU float32/float64 tensor and numba importable."""
    return (
        device_paths.cpu_kernels(tensor)
        and tensor.dtype in (torch.float32, torch.float64)
        and not tensor.requires_grad
        and _kernels() is not None
    )


def group_size(n_units: int, k: int) -> int:
    """Members per group: a divisor of n_units up to 16 that leaves at least 4 k groups
    (1: each value its own group, a plain scan)."""
    for group in (16, 8, 4, 2):
        if n_units % group == 0 and n_units // group >= 4 * k:
            return group
    return 1


MODES = {"select": 0, "dense": 1, "csr": 2, "onto_zeros": 3}


def row_topk(
    pre_BU: Tensor,
    k: int,
    mode: str = "select",
    threads: int | None = None,
    refine: Refinement | None = None,
    dense_out: Tensor | None = None,
) -> tuple[Tensor, Tensor] | None:
    """Exact per-row top k of `pre_BU` on CPU; None: use torch.

    mode "select": (values (B, k), units (B, k)), each row sorted by unit; of values tied
      at the k-th largest, the lowest units win (the same bits on any number of threads).
    mode "dense": pre_BU becomes the TopK codes in place (row zeroed but its ReLU'd winners);
      returns the same (values, units) as "select" (values before the ReLU).
    mode "csr": as "select", ReLU'd, with -1 units where the value was <= 0 (the caller
      drops those).
    mode "onto_zeros": as "dense", with `refine`, where `dense_out` holds zeros already (a
      fresh mapping): only the winners are written (without `refine`: "dense").
    After None in mode "dense", pre_BU's contents are undefined: recompute them.
    threads: at most this many threads (None: torch's count); 1 from a caller's own threads.
    refine: pre_BU is bfloat16's approximation (sae/bf16_preacts.py): the values near each
      row's cut-off are recomputed in float32 and the selection made among those, on one
      thread (the same result as the float32 recomputation of the whole row would give);
      mode "dense" then writes the codes to `dense_out` (float32, pre_BU's shape).
    """
    kernels = _kernels()
    n_rows, n_units = pre_BU.shape
    if kernels is None or not pre_BU.is_contiguous() or not 0 < k <= n_units:
        return None
    group, code = group_size(n_units, k), MODES[mode]
    if refine is not None:
        return _refined_topk(kernels, pre_BU, k, group, code, refine, dense_out)
    code = MODES["dense"] if mode == "onto_zeros" else code
    pre = pre_BU.detach().numpy()
    values = np.empty((n_rows, k), pre.dtype)
    units = np.empty((n_rows, k), np.int64)
    parts = _row_parts(n_rows, torch.get_num_threads() if threads is None else threads)
    with record_function("sae::row_topk"):  # named in torch.profiler breakdowns
        if len(parts) == 1:
            ok = kernels["rows"](pre, k, group, code, values, units)
        else:  # the kernel releases the GIL: one thread per part of the rows
            ok = all(
                pool()[0].map(
                    lambda p: kernels["rows"](pre[p], k, group, code, values[p], units[p]),
                    parts,
                )
            )
    if not ok:  # in mode "dense", pre_BU now holds partial results
        return None
    return torch.from_numpy(values), torch.from_numpy(units)


def _refined_topk(
    kernels: dict[str, Any],
    pre_BU: Tensor,
    k: int,
    group: int,
    code: int,
    refine: Refinement,
    dense_out: Tensor | None,
) -> tuple[Tensor, Tensor] | None:
    """`row_topk` of bfloat16 pre-activations with `refine` (one thread)."""
    n_rows, n_units = pre_BU.shape
    values = np.empty((n_rows, k), refine.xa.dtype)
    units = np.empty((n_rows, k), np.int64)
    out = _dense_target(dense_out, refine)
    row_cap = min(n_units, ROW_CANDIDATES * k + 64)
    with record_function("sae::row_topk"):
        ok = kernels["refined_rows"](
            bits(pre_BU), *refine, k, group, code, row_cap, values, units, out
        )
    return (torch.from_numpy(values), torch.from_numpy(units)) if ok else None


def _dense_target(dense_out: Tensor | None, refine: Refinement) -> np.ndarray:
    """Where a refined kernel writes dense codes (a placeholder where it writes none)."""
    if dense_out is None:
        return np.empty((0, 0), refine.xa.dtype)
    return dense_out.detach().numpy()


_GATE_DENSE = {"csr": 0, "dense": 1, "onto_zeros": 2}
"""refined_gate_rows' dense argument per mode."""


def gate_rows(
    pre_BU: Tensor,
    cut_U: Tensor,
    mode: str,
    refine: Refinement | None = None,
    dense_out: Tensor | None = None,
) -> tuple[Tensor, ...] | None:
    """Threshold-gated codes (each value kept where above its unit's cut-off, else 0) on
    one thread; None where the kernels do not apply or a value is NaN (use torch).

    mode "dense": pre_BU becomes the codes in place (contents undefined after None);
      returns (). "onto_zeros": as "dense", but with `refine` the codes go onto the zeros
      `dense_out` holds already.
    mode "csr": (values, units, counts per row), each row's units increasing; two passes
      over the rows (count, then collect), pre_BU unchanged.
    refine: pre_BU is bfloat16's approximation (see `row_topk`): the values near their
      cut-offs are recomputed in float32 and gated (where few are: a BatchTopK's cut-offs);
      mode "dense" then writes the codes to `dense_out`.
    """
    kernels = _kernels()
    if kernels is None or not pre_BU.is_contiguous():
        return None
    if refine is not None:
        cut = cut_U.detach().contiguous().numpy()
        if cut.dtype != refine.xa.dtype:
            return None
        with record_function("sae::gate_rows"):
            counts = np.empty(pre_BU.shape[0], np.int64)
            out = _dense_target(dense_out, refine)
            ok, values, units = kernels["refined_gate"](
                bits(pre_BU), *refine, cut, _GATE_DENSE[mode], counts, out
            )
        if not ok:
            return None
        if mode != "csr":
            return ()
        return torch.from_numpy(values), torch.from_numpy(units), torch.from_numpy(counts)
    if cut_U.dtype != pre_BU.dtype:
        return None
    pre, cut = pre_BU.detach().numpy(), cut_U.detach().contiguous().numpy()
    with record_function("sae::gate_rows"):
        if mode != "csr":
            return () if kernels["gate_dense"](pre, cut) else None
        counts = np.empty(pre.shape[0], np.int64)
        if not kernels["gate_counts"](pre, cut, counts):
            return None
        starts = np.zeros(pre.shape[0], np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        total = int(counts.sum())
        values, units = np.empty(total, pre.dtype), np.empty(total, np.int64)
        kernels["gate_collect"](pre, cut, starts, values, units)
    return torch.from_numpy(values), torch.from_numpy(units), torch.from_numpy(counts)


ROW_CANDIDATES = 8
"""A row's refined candidates beyond this many times k (plus 64) are recomputed on their
own (`row_topk` with refine=), not with the piece's."""
PART_ROWS = 256
"""Fewest rows per thread of `row_topk` (below that one thread does all)."""


@cache
def pool() -> tuple[ThreadPoolExecutor, int]:
    """Threads for `row_topk` (one per core) and their count."""
    workers = max(1, os.cpu_count() or 1)
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sae-topk"), workers


if hasattr(os, "register_at_fork"):  # a forked child has none of the pool's threads
    os.register_at_fork(after_in_child=pool.cache_clear)


def _row_parts(n_rows: int, threads: int) -> list[slice]:
    """Row ranges of `row_topk`, one per thread (torch.get_num_threads() is 1 while a
    serial step runs, see sparse_ops_threads), at most one per core."""
    threads = min(threads, n_rows // PART_ROWS)
    if threads > 1:
        threads = min(threads, pool()[1])
    if threads <= 1:
        return [slice(0, n_rows)]
    bounds = [n_rows * i // threads for i in range(threads + 1)]
    return [slice(lo, hi) for lo, hi in itertools.pairwise(bounds)]


SAMPLE_ROWS = 128
"""Rows of the batch whose values give `batch_topk` its cut-off guess."""
MARGIN = 1.5
"""The guess keeps about 1.5x the winners expected, so the sample's noise rarely makes it
keep fewer than k * B (then a second guess at 4x, then the torch path)."""


def batch_topk(pre_BU: Tensor, n_keep: int) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """The `n_keep` largest values of the batch: (units, offsets, cut-off, values) with
    entries in row-major order (as the flat torch.topk path gives), or None where not
    exact."""
    kernels = _kernels()
    n_rows, n_units = pre_BU.shape
    total = n_rows * n_units
    if kernels is None or not pre_BU.is_contiguous() or not 0 < n_keep < total:
        return None
    pre = pre_BU.detach().numpy()
    for margin in (MARGIN, 4 * MARGIN):
        guess = sample_guess(pre, n_keep, margin)
        if guess is None:
            return None
        cap = min(total, collect_cap(n_keep, margin))
        values = np.empty(cap, pre.dtype)
        flat = np.empty(cap, np.int64)
        with record_function("sae::batch_topk"):
            count = _collect_above(kernels["above"], pre, guess, values, flat)
        if count < 0:  # NaN
            return None
        if n_keep <= count <= cap:
            break
        if count > cap:
            return None
    else:
        return None
    return select_collected(values[:count], flat[:count], n_keep, n_rows, n_units)


def sample_guess(pre: np.ndarray, n_keep: int, margin: float = MARGIN) -> Any | None:
    """A cut-off that about `margin` * n_keep values of `pre` reach, from a sample of its
    rows; None where it is not finite."""
    n_rows = pre.shape[0]
    sample = pre[:: max(1, n_rows // SAMPLE_ROWS)].reshape(-1)
    rank = min(sample.size, math.ceil(margin * n_keep / pre.size * sample.size) + 8)
    guess = np.partition(sample, sample.size - rank)[sample.size - rank]
    return guess if math.isfinite(float(guess)) else None


def collect_cap(n_keep: int, margin: float = MARGIN) -> int:
    """How many values a collection above a guess of `margin` may hold before it is
    refused (too low a guess: the selection among them would cost more than a new one)."""
    return max(2 * n_keep, math.ceil(3 * margin * n_keep))


def select_collected(
    values: np.ndarray, flat: np.ndarray, n_keep: int, n_rows: int, n_units: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`batch_topk`'s result from the values collected above a cut-off (at least n_keep of
    them, row-major, with their flat positions): the n_keep largest, ties at the cut-off
    taken in row-major order."""
    count = values.shape[0]
    cutoff = np.partition(values, count - n_keep)[count - n_keep]
    keep = values > cutoff
    ties = np.flatnonzero(values == cutoff)  # ties at the cut-off: the first ones, row-major
    keep[ties[: n_keep - int(keep.sum())]] = True
    flat = flat[keep]
    counts = np.bincount(flat // n_units, minlength=n_rows)
    offsets = np.cumsum(counts) - counts
    return (
        torch.from_numpy(flat % n_units),
        torch.from_numpy(offsets.astype(np.int64)),
        torch.tensor(cutoff, dtype=torch.from_numpy(values[:0]).dtype),
        torch.from_numpy(values[keep]),
    )


def collect_piece(
    pre_BU: Tensor,
    cutoff: float,
    cap: int,
    first_row: int = 0,
    refine: Refinement | None = None,
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """On the caller's thread: the values >= cutoff of `pre_BU` (row-major) and their flat
    positions, rows counted from `first_row`, in buffers of `cap` entries, and how many
    there are (beyond `cap`: too many); None on NaN or inf, or without the kernels.
    refine: pre_BU is approximate (see `row_topk`): the values are float32
    recomputations, of those whose approximation comes near the cut-off."""
    kernels = _kernels()
    if kernels is None or not pre_BU.is_contiguous():
        return None
    if refine is not None:
        dtype = refine.xa.dtype
        values, flat = np.empty(cap, dtype), np.empty(cap, np.int64)
        count: int = kernels["refined_above"](
            bits(pre_BU), *refine, dtype.type(cutoff), values, flat
        )
    else:
        pre = pre_BU.detach().numpy()
        values, flat = np.empty(cap, pre.dtype), np.empty(cap, np.int64)
        count = kernels["above"](pre, pre.dtype.type(cutoff), values, flat)
    if count < 0:
        return None
    flat[: min(count, cap)] += first_row * pre_BU.shape[1]
    return values, flat, count


def _collect_above(
    kernel: Any, pre: np.ndarray, cutoff: Any, values: np.ndarray, flat: np.ndarray
) -> int:
    """`collect_above` over the rows, one part per thread (as `row_topk`): each part into
    its own buffers, then joined in row order (the same entries in the same order as one
    pass; a count above the buffers' size, or -1 for NaN, as one pass gives)."""
    n_rows, n_units = pre.shape
    parts = _row_parts(n_rows, torch.get_num_threads())
    if len(parts) == 1:
        count: int = kernel(pre, cutoff, values, flat)
        return count
    buffers = [(np.empty_like(values), np.empty_like(flat)) for _ in parts]
    counts = list(
        pool()[0].map(lambda i: kernel(pre[parts[i]], cutoff, *buffers[i]), range(len(parts)))
    )
    if min(counts) < 0:
        return -1
    total = sum(counts)
    if total > values.shape[0]:
        return total
    at = 0
    for part, (part_values, part_flat), count in zip(parts, buffers, counts, strict=True):
        values[at : at + count] = part_values[:count]
        flat[at : at + count] = part_flat[:count] + part.start * n_units
        at += count
    return total
