"""The products of a sparse step's backward: per-entry dot products and per-unit sums.

For N = B k stored entries (row b, unit u, value v) the backward needs the per-entry
grad[b] . W_dec[u] (the decoder's gradient to the codes) and per-unit sums
sum_e w_e rows[b_e] (the W_dec and W_enc gradients, and b_enc's sum of the w_e).

CPU, compiled (numba, sae/_numba_sparse_grads.py): each is one pass over the rows in
order, dot products in the inputs' dtype (vectorised), per-unit sums scattered from each
source row as it is read (no sort, no gather of rows), split between the threads of
sae/sparse_kernels.pool() by rows, or by units for the sums (each unit's sum runs in row
order on any split: the bits do not depend on the thread count). Measured on the small
shape of benchmarks/train_throughput.py (thread CPU time, 1 thread): dots 4.1 ms against
8.0 for embedding_bag's per-sample-weights backward, sums 3.4 ms against 6.6 for a radix
sort by unit + embedding_bag; the whole step 6% faster (in-process A/B, loaded machine).
The decoder's forward stays torch's embedding_bag (fbgemm prefetches the rows it gathers:
2.5 ms against 4 ms compiled here).
Elsewhere, or without numba: the torch ops (on CPU a radix sort by unit, then embedding
bags; other devices: embedding_bag's own backward).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.profiler import record_function

from sae_widgets.sae import device_paths, sparse_kernels

ENABLED = True
"""Whether the compiled kernels run where they apply (the benchmark's A/B turns them off)."""
PART_ENTRIES = 16_384
"""Fewest entries per thread (below that one thread does all)."""


@cache
def _kernels() -> Any | None:
    if sparse_kernels._kernels() is None:  # numba missing: warned there, once
        return None
    from sae_widgets.sae import _numba_sparse_grads

    return _numba_sparse_grads


def compiled(*tensors: Tensor) -> Any | None:
    """The kernels, if they apply: CPU float32/float64 tensors of one dtype, numba present."""
    dtype = tensors[0].dtype
    if (
        ENABLED
        and dtype in (torch.float32, torch.float64)
        and all(device_paths.cpu_kernels(t) and t.dtype == dtype for t in tensors)
    ):
        return _kernels()
    return None


def run_split(n: int, n_entries: int, fn: Callable[[int, int], None]) -> None:
    """fn(lo, hi) over ranges of 0:n, one per thread (torch's count, one per core at most)."""
    threads = min(torch.get_num_threads(), sparse_kernels.pool()[1], n_entries // PART_ENTRIES)
    threads = max(1, min(threads, n))
    if threads == 1:
        fn(0, n)
        return
    bounds = [n * i // threads for i in range(threads + 1)]
    list(sparse_kernels.pool()[0].map(lambda p: fn(*p), itertools.pairwise(bounds)))


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _ends(offsets: Tensor, n_entries: int) -> np.ndarray:
    ends = np.empty(offsets.numel() + 1, np.int64)
    ends[:-1] = offsets.numpy()
    ends[-1] = n_entries
    return ends


def entry_dots(grad_BD: Tensor, W: Tensor, units: Tensor, offsets: Tensor) -> Tensor:
    """(N,): grad_BD[row of e] . W[units[e]] for each entry e."""
    kernels = compiled(grad_BD, W)
    if kernels is None:
        rows = entry_rows(offsets, units.numel())
        grad: Tensor = torch.ops.aten._embedding_bag_per_sample_weights_backward(
            grad_BD, W, units, offsets, rows, 0
        )
        return grad
    n, n_rows = units.numel(), offsets.numel()
    g, w, u, ends = _np(grad_BD), _np(W), _np(units), _ends(offsets, n)
    out = np.empty(n, g.dtype)
    with record_function("sae::entry_dots"):
        run_split(n_rows, n, lambda lo, hi: kernels.entry_dots(g, w, u, ends, lo, hi, out))
    return torch.from_numpy(out)


def unit_sums(
    units: Tensor,
    offsets: Tensor,
    weights: Tensor,
    rows_BD: Tensor,
    n_units: int,
    weight_sums: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """((n_units, D): row u the sum over the entries e of unit u of
    weights[e] * rows_BD[row of e]; (n_units,) the sums of those weights if asked)."""
    kernels = compiled(weights, rows_BD)
    if kernels is None:
        sums = _torch_unit_sums(units, offsets, weights, rows_BD, n_units)
        if not weight_sums:
            return sums, None
        return sums, weights.new_zeros(n_units).index_add_(0, units, weights.detach())
    n = units.numel()
    u, ends, w, src = _np(units), _ends(offsets, n), _np(weights), _np(rows_BD)
    out = np.empty((n_units, src.shape[1]), src.dtype)
    totals = np.empty(n_units if weight_sums else 0, src.dtype)

    def units_in(lo: int, hi: int) -> None:
        kernels.unit_sums(src, w, u, ends, lo, hi, out, totals)

    with record_function("sae::unit_sums"):
        run_split(n_units, n, units_in)
    return torch.from_numpy(out), torch.from_numpy(totals) if weight_sums else None


def transposed(sums_UD: Tensor) -> Tensor:
    """sums_UD.T, contiguous: a W_enc gradient in W_enc's own (d, n_units) layout, as the
    optimizer reads it; tiles on the pool's threads where the kernels apply, torch's copy
    elsewhere. On the 2-core Intel Xeon project machine, 8,192 x 512 float32 (best of 15
    calls each, in one process): 1.45 ms against torch's 4.8 on 2 threads, 2.6 against 4.1
    on one; `benchmarks/train_throughput.py --shapes large` shows it in the step profile."""
    kernels = compiled(sums_UD)
    if kernels is None or sums_UD.dim() != 2:
        return sums_UD.t().contiguous()
    src = _np(sums_UD)
    n_units, d = src.shape
    out = np.empty((d, n_units), src.dtype)
    with record_function("sae::transpose"):
        run_split(n_units, n_units * d, lambda lo, hi: kernels.transpose_into(src, out, lo, hi))
    return torch.from_numpy(out)


# ------------------------------------------------------------------------ torch path
def entry_rows(offsets: Tensor, n_entries: int) -> Tensor:
    """(N,) row of each stored entry of a ragged layout with these row `offsets`."""
    # device ops only, the output size given: a GPU's host never waits for the counts
    counts = torch.empty_like(offsets)
    torch.sub(offsets[1:], offsets[:-1], out=counts[:-1])
    torch.sub(n_entries, offsets[-1:], out=counts[-1:])
    rows = torch.arange(offsets.numel(), device=offsets.device)
    return torch.repeat_interleave(rows, counts, output_size=n_entries)


def _torch_unit_sums(
    units: Tensor, offsets: Tensor, weights: Tensor, rows_BD: Tensor, n_units: int
) -> Tensor:
    """`unit_sums` in torch. CPU: one stable (radix) sort groups the entries by unit, then
    `F.embedding_bag` sums each unit's rows (embedding_bag's own backward sorts with a
    comparison sort, which cost as much as the encoder matmul). Elsewhere: that backward."""
    weights = weights.detach()
    if not device_paths.cpu_kernels(rows_BD):
        with torch.enable_grad():
            scratch = rows_BD.new_zeros(n_units, rows_BD.shape[1], requires_grad=True)
            bags = F.embedding_bag(units, scratch, offsets, mode="sum", per_sample_weights=weights)
            (grad,) = torch.autograd.grad(bags, scratch, rows_BD)
        return grad
    rows = entry_rows(offsets, units.numel())
    order = _order_by_unit(units, n_units)
    counts = torch.bincount(units, minlength=n_units)
    starts = torch.cumsum(counts, 0) - counts
    return F.embedding_bag(
        rows[order], rows_BD, starts, mode="sum", per_sample_weights=weights[order]
    )


def _order_by_unit(units: Tensor, n_units: int) -> Tensor:
    """Stable order of entries by unit. Up to 65,536 units: numpy's radix sort of 16-bit keys
    (one thread, O(N)); torch's parallel sort synchronises its threads on every pass, which
    on a loaded machine cost as much as the encoder matmul."""
    if n_units <= 1 << 16:
        keys = units.numpy().astype(np.uint16)
        return torch.from_numpy(np.argsort(keys, kind="stable"))
    return torch.sort(units, stable=True).indices
