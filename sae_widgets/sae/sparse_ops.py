"""Sparse building blocks for SAE training: unit selection, a sparse-backward encoder gather,
and a gathered decoder (JumpReLU's straight-through estimators: sparse_ops_jumprelu.py).

A TopK step only needs the dense encoder matmul (to know which units win); everything after
it touches the k winning units of each sample. Codes are kept as a ragged CSR-like triple
(`SparseCodes`) so that TopK (k per row) and BatchTopK (a variable count per row) share one
path: `F.embedding_bag` gathers k decoder rows per sample instead of multiplying zeros.

CPU kernels (chosen per device; on other devices the plain torch ops run, as they are not
measured to help there; see benchmarks/train_throughput.py for the measurements):
- `topk_rows` / `preacts_topk` / `batch_topk_units`: the compiled (numba) selections of
  sae/sparse_kernels.py first (exact; torch.topk over short rows cost half the matmul);
  where they decline (NaN, no numba) the torch versions below: an exact per-row top-k over
  strided group maxima, and a batch top-k from per-row candidates.
- the pre-activations: one matmul with the bias as an extra input column, into a buffer the
  Trainer reuses across steps (sae/scratch.py).
- the backward's per-entry dot products and per-unit weight-gradient sums: sae/sparse_grads.py
  (compiled one-pass kernels on CPU, torch ops elsewhere).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sae_widgets.sae import device_paths, lanes, scratch, sparse_grads, sparse_kernels
from sae_widgets.sae.sparse_ops_threads import matmul_threads


class SparseCodes(NamedTuple):
    """Codes of a batch in ragged CSR form: row b owns entries offsets[b]:offsets[b+1]."""

    units: Tensor
    """(N,) int64 unit index of each stored activation."""
    offsets: Tensor
    """(B,) int64 start of each row's entries in `units` / `values`."""
    values: Tensor
    """(N,) activation values (may carry autograd history)."""
    n_rows: int
    """B, the number of samples."""

    def rows(self) -> Tensor:
        """(N,) row index of each stored activation."""
        return sparse_grads.entry_rows(self.offsets, self.units.numel())

    def to_dense(self, n_units: int) -> Tensor:
        """(B, n_units) dense codes."""
        dense = self.values.new_zeros(self.n_rows, n_units)
        dense[self.rows(), self.units] = self.values
        return dense


TOPK_GROUP = 16
"""Members of a group in `topk_rows` (columns j, j + n_units / 16, ...): one strided max."""


def _cpu_kernels(tensor: Tensor) -> bool:
    """Whether the CPU-measured kernels of this module apply (elsewhere: plain torch ops)."""
    return device_paths.cpu_kernels(tensor)


def topk_rows(pre_BU: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Per-row top-k (values, indices), unsorted; exact: the same values as `torch.topk`.

    On CPU the compiled kernel (sae/sparse_kernels.py; rows sorted by unit); without it,
    each row's columns form n_units / 16 strided groups; any group holding one of the
    row's k largest values has a maximum at least the k-th largest, so the k groups with the
    largest maxima hold k values that are the row's top k. Only their 16 k members are ranked.
    Ties may pick other indices of equal value, as torch.topk itself may. No gradient.
    """
    n_rows, n_units = pre_BU.shape
    n_groups = n_units // TOPK_GROUP
    if _cpu_kernels(pre_BU) and sparse_kernels.available(pre_BU.detach()):
        compiled = sparse_kernels.row_topk(pre_BU.detach(), k)
        if compiled is not None:
            return compiled
    if (
        not _cpu_kernels(pre_BU)
        or n_units % TOPK_GROUP
        or 4 * k > n_groups  # ranks 16 k candidates: a gain only while that is << n_units
        or not pre_BU.is_contiguous()
    ):
        values, units = pre_BU.detach().topk(k, dim=1, sorted=False)
        return values, units
    with torch.no_grad():
        maxima = pre_BU.view(n_rows, TOPK_GROUP, n_groups).amax(1)
        best = maxima.topk(k, dim=1, sorted=False).indices
        members = torch.arange(0, n_units, n_groups, device=pre_BU.device)
        candidates = (best.unsqueeze(1) + members.view(1, -1, 1)).view(n_rows, -1)
        values, position = pre_BU.gather(1, candidates).topk(k, dim=1, sorted=False)
        return values, candidates.gather(1, position)


def chunk_rows_for(n_units: int) -> int:
    """Rows per chunk of pre-activations (~32 MiB, the last-level cache of the 2-core test
    machine) between the matmul and its top-k. Few chunks: on a loaded machine each op pays
    a thread synchronisation, and smaller chunks measured slower there."""
    return max(512, min(4096, (1 << 23) // max(1, n_units)))


def affine_width(d: int) -> int:
    """Columns of (x | 1 | 0...): d + 1 rounded up to a multiple of 8. The GEMM runs its
    inner dimension in blocks of 8: 4096 x 257 @ 257 x 2048 took 1.15x the time of 256,
    264 only 1.04x (thread CPU time, 1 thread, the 2-core project machine)."""
    return -(-(d + 1) // 8) * 8


def affine_operands(x_BD: Tensor, W_enc: Tensor, b_enc: Tensor) -> tuple[Tensor, Tensor]:
    """(x | 1 | 0...) and (W_enc ; b_enc ; 0...): their product is x @ W_enc + b_enc in one
    plain matmul.

    On CPU `addmm` first fills its whole (B, n_units) output with the bias, an extra pass
    that cost a third of the matmul itself; the bias as one more input column costs none.
    In a training step both are buffers kept across steps (sae/scratch.py): their constant
    parts (the ones, the zero padding) are set once, and only x and the weights are copied.
    """
    n_rows, d = x_BD.shape
    width = affine_width(d)

    def input_constants(xa: Tensor) -> None:
        xa[:, d:] = 0
        xa[:, d] = 1

    def weight_padding(Wa: Tensor) -> None:
        Wa[d + 1 :] = 0

    xa_BD = scratch.buffer("affine input", (n_rows, width), x_BD, input_constants)
    xa_BD[:, :d] = x_BD.detach()
    Wa_DU = scratch.buffer("affine weights", (width, W_enc.shape[1]), W_enc, weight_padding)
    Wa_DU[:d] = W_enc.detach()
    Wa_DU[d] = b_enc.detach()
    return xa_BD, Wa_DU


def encoder_matmul(
    x_BD: Tensor, W_enc: Tensor, b_enc: Tensor, dtype: torch.dtype | None = None
) -> Tensor:
    """x @ W_enc + b_enc (differentiable). Where the torch ops run (a GPU) and `dtype` is
    given (torch.bfloat16: mixed precision), the matmul takes its inputs in that dtype and
    returns the result in it; the CPU kernels' float32 / float64 otherwise (they choose
    their own products: bfloat16 made exact where the CPU has AMX, sae/bf16_preacts.py;
    float32 elsewhere, where a bfloat16 matmul measured 90x slower)."""
    if dtype is None or dtype == W_enc.dtype or _cpu_kernels(W_enc):
        return torch.addmm(b_enc, x_BD, W_enc)
    return torch.addmm(b_enc.to(dtype), x_BD.to(dtype), W_enc.to(dtype))


def affine_preacts(
    x_BD: Tensor, W_enc: Tensor, b_enc: Tensor, dtype: torch.dtype | None = None
) -> Tensor:
    """(B, n_units) x @ W_enc + b_enc without gradients (see `affine_operands`); in `dtype`
    where the torch ops run (see `encoder_matmul`)."""
    with torch.no_grad():
        if not _cpu_kernels(x_BD):
            return encoder_matmul(x_BD, W_enc, b_enc, dtype)
        xa_BD, Wa_DU = affine_operands(x_BD, W_enc, b_enc)
        out = scratch.buffer("preacts", (x_BD.shape[0], W_enc.shape[1]), xa_BD)
        with matmul_threads():
            lanes.multiply(xa_BD, Wa_DU, out)
        return out


def preacts_topk(
    xc_BD: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    k: int,
    chunk_rows: int | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Dense pre-activations and their per-row top-k, without gradients.

    Returns (pre (B, n_units), values (B*k,), units (B*k,), offsets (B,)): row chunks, each
    multiplied and then selected while in cache (the compiled top-k on CPU, else torch's).
    A CPU training step selects in the lanes instead and keeps no whole matrix
    (sae/topk_selection.py); this is its path elsewhere and where the lanes declined. Where
    the torch ops run, `dtype` (bfloat16) is the matmul's and pre's (see `encoder_matmul`);
    the values are returned in xc's dtype.
    """
    n_rows, n_units = xc_BD.shape[0], W_enc.shape[1]
    offsets = torch.arange(0, n_rows * k, k, device=xc_BD.device)
    chunk_rows = chunk_rows or chunk_rows_for(n_units)
    with torch.no_grad():
        cpu = _cpu_kernels(xc_BD)
        W, b = W_enc.detach(), b_enc.detach()
        if not cpu and dtype is not None:  # mixed precision: the weights cast once
            W, b = W.to(dtype), b.to(dtype)
        pre_BU = xc_BD.new_empty(n_rows, n_units, dtype=W.dtype)
        values_BK = xc_BD.new_empty(n_rows, k)
        units_BK = torch.empty(n_rows, k, dtype=torch.long, device=xc_BD.device)
        if cpu:
            xa_BD, Wa_DU = affine_operands(xc_BD, W_enc, b_enc)
        for start in range(0, n_rows, chunk_rows):
            rows = slice(start, start + chunk_rows)
            if cpu:
                with matmul_threads():
                    torch.mm(xa_BD[rows], Wa_DU, out=pre_BU[rows])
            else:
                torch.addmm(b, xc_BD[rows].to(W.dtype), W, out=pre_BU[rows])
            values_BK[rows], units_BK[rows] = topk_rows(pre_BU[rows], k)  # in xc's dtype
    return pre_BU, values_BK.reshape(-1), units_BK.reshape(-1), offsets


CANDIDATES = 4
"""BatchTopK: candidates per row, as a multiple of k (see `batch_topk_units`)."""


def batch_topk_units(pre_BU: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Top k*B pre-activations over the whole batch: (units, offsets, smallest value kept).

    A flat top-k over B*n_units values is slow, so first take each row's top `4k` candidates
    and find the cut-off among them with a selection (kthvalue). A row whose candidates all
    beat that cut-off may hold more winners: those rows (a few of a batch) join with all
    their values and the cut-off is selected again; every other row's remaining values lie
    below it. (Widening every row's candidates instead cost a second top-k of the whole
    batch, on every step of the toy benchmark.) Only a cut-off tied between values falls
    back to the flat top-k (to keep exactly k*B).
    """
    n_rows, n_units = pre_BU.shape
    n_keep = min(k * n_rows, n_rows * n_units)
    if _cpu_kernels(pre_BU) and sparse_kernels.available(pre_BU):
        compiled = sparse_kernels.batch_topk(pre_BU, n_keep)
        if compiled is not None:
            return compiled[:3]
    cand_vals, cand_units = topk_rows(pre_BU, min(n_units, CANDIDATES * k))
    flat = cand_vals.reshape(-1)
    cutoff = flat.kthvalue(flat.numel() - n_keep + 1).values
    keep = cand_vals >= cutoff
    full = cand_vals.amin(dim=1) > cutoff
    if cand_vals.shape[1] == n_units:
        full.zero_()  # every value is a candidate already
    full_rows = full.nonzero().squeeze(1) if bool(full.any()) else None
    if full_rows is not None:  # those rows' every value is a candidate now
        pool = torch.cat([cand_vals[~full].reshape(-1), pre_BU[full_rows].reshape(-1)])
        cutoff = pool.kthvalue(pool.numel() - n_keep + 1).values
        keep = (cand_vals >= cutoff) & ~full[:, None]
        keep_full = pre_BU[full_rows] >= cutoff
        counts = keep.sum(dim=1)
        counts[full_rows] = keep_full.sum(dim=1)
    else:
        counts = keep.sum(dim=1)
    if int(counts.sum()) != n_keep:  # values tied at the cut-off: keep exactly n_keep
        kept_vals, flat_pos = pre_BU.reshape(-1).topk(n_keep, sorted=False)
        cutoff = kept_vals.min()
        flat_pos = flat_pos.sort().values
        rows, units = flat_pos // n_units, flat_pos % n_units
        counts = torch.bincount(rows, minlength=n_rows)
        return units, torch.cumsum(counts, 0) - counts, cutoff
    offsets = torch.cumsum(counts, 0) - counts
    if full_rows is None:
        return cand_units[keep], offsets, cutoff
    units = torch.empty(n_keep, dtype=torch.long, device=pre_BU.device)
    position = offsets[:, None] + keep.cumsum(dim=1) - 1  # each entry's place in its row
    units[position[keep]] = cand_units[keep]
    position = offsets[full_rows][:, None] + keep_full.cumsum(dim=1) - 1
    units[position[keep_full]] = keep_full.nonzero()[:, 1]
    return units, offsets, cutoff


def csr_entries(values_BK: Tensor, units_BK: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """CSR parts of per-row top-k codes: (values, units, counts per row), each row's units in
    increasing order and zero values dropped.

    CPU: numpy's argsort of the short rows; torch's per-row sort of a (8192, 16) matrix took
    330 ms against numpy's 16 ms on the 2-core project machine (and decided encode_sparse's
    speed). Elsewhere: torch's sort.
    """
    if not _cpu_kernels(units_BK):
        units_BK, order = units_BK.sort(dim=1)
        values_BK = values_BK.gather(1, order)
        keep = values_BK > 0
        return values_BK[keep], units_BK[keep], keep.sum(1)
    units_np, values_np = units_BK.numpy(), values_BK.detach().numpy()
    order_np = np.argsort(units_np, axis=1, kind="stable")
    units_np = np.take_along_axis(units_np, order_np, 1)
    values_np = np.take_along_axis(values_np, order_np, 1)
    keep_np = values_np > 0
    values, units = torch.from_numpy(values_np[keep_np]), torch.from_numpy(units_np[keep_np])
    return values, units, torch.from_numpy(keep_np.sum(1))


class _GatheredPreacts(torch.autograd.Function):
    """pre[b, u] = (x[b] - b_dec) . W_enc[:, u] + b_enc[u], read at the selected (b, u) only.

    The forward reads values from a dense no-grad matmul; the backward touches only the
    selected entries: dW_enc[:, u] = sum_b g[b, u] (x[b] - b_dec), summed per unit by
    sae/sparse_grads.py (no B x n_units zeros).
    """

    @staticmethod
    def forward(
        ctx: Any,
        values: Tensor,
        units: Tensor,
        offsets: Tensor,
        xc_BD: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        b_dec: Tensor,
    ) -> Tensor:
        ctx.save_for_backward(units, offsets, xc_BD, W_enc)
        return values.clone()

    @staticmethod
    def backward(ctx: Any, grad_N: Tensor) -> tuple[Tensor | None, ...]:
        units, offsets, xc_BD, W_enc = ctx.saved_tensors
        n_units = W_enc.shape[1]
        grad_N = grad_N.contiguous()
        grad_W_enc = None
        if ctx.needs_input_grad[4]:  # b_enc's gradient: the weights' sums, in the same pass
            sums, grad_b_enc = sparse_grads.unit_sums(units, offsets, grad_N, xc_BD, n_units, True)
            grad_W_enc = sparse_grads.transposed(sums)  # W_enc's own (d, n_units) layout
        else:
            grad_b_enc = grad_N.new_zeros(n_units).index_add_(0, units, grad_N)
        # d pre / d b_dec = -W_enc[:, u], summed over the selected entries
        grad_b_dec = -(W_enc @ grad_b_enc) if ctx.needs_input_grad[6] else None
        return None, None, None, None, grad_W_enc, grad_b_enc, grad_b_dec


def gathered_preacts(
    pre_BU: Tensor | None,
    units: Tensor,
    offsets: Tensor,
    xc_BD: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    b_dec: Tensor,
    values: Tensor | None = None,
) -> Tensor:
    """Differentiable pre-activations at the selected units (B-row ragged layout).

    `pre_BU` (grad-free) is read at the selection unless its `values` are already known;
    `xc_BD` is x - b_dec, detached. Values from a mixed-precision matmul (bfloat16) come
    back in the weights' dtype, as does everything after the selection.
    """
    if values is None:
        assert pre_BU is not None, "the values, or the pre-activations to read them from"
        rows = SparseCodes(units, offsets, units, xc_BD.shape[0]).rows()
        values = pre_BU[rows, units]
    out: Tensor = _GatheredPreacts.apply(
        values.detach().to(W_enc.dtype), units, offsets, xc_BD.detach(), W_enc, b_enc, b_dec
    )
    return out


class _DecodeSparse(torch.autograd.Function):
    """sum_u values[e] W_dec[u] per row; the W_dec gradient groups entries by unit (CPU)."""

    @staticmethod
    def forward(ctx: Any, values: Tensor, units: Tensor, offsets: Tensor, W_dec: Tensor) -> Tensor:
        ctx.save_for_backward(values, units, offsets, W_dec)
        return F.embedding_bag(units, W_dec, offsets, mode="sum", per_sample_weights=values)

    @staticmethod
    def backward(ctx: Any, grad_BD: Tensor) -> tuple[Tensor | None, ...]:
        values, units, offsets, W_dec = ctx.saved_tensors
        grad_BD = grad_BD.contiguous()
        grad_values = grad_W_dec = None
        if ctx.needs_input_grad[0]:  # one dot product per stored entry: grad[row] . W_dec[unit]
            grad_values = sparse_grads.entry_dots(grad_BD, W_dec, units, offsets)
        if ctx.needs_input_grad[3]:
            grad_W_dec = sparse_grads.unit_sums(units, offsets, values, grad_BD, W_dec.shape[0])[0]
        return grad_values, None, None, grad_W_dec


def decode_sparse(codes: SparseCodes, W_dec: Tensor) -> Tensor:
    """sum_u codes[b, u] W_dec[u] for each row b, gathering only the stored units (no bias)."""
    if not _cpu_kernels(W_dec):
        return F.embedding_bag(
            codes.units, W_dec, codes.offsets, mode="sum", per_sample_weights=codes.values
        )
    out: Tensor = _DecodeSparse.apply(codes.values, codes.units, codes.offsets, W_dec)
    return out
