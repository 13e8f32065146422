"""Sparse building blocks for SAE training: unit selection, a sparse-backward encoder gather,
a gathered decoder, and the straight-through estimators of JumpReLU.

A TopK step only needs the dense encoder matmul (to know which units win); everything after
it touches the k winning units of each sample. Codes are kept as a ragged CSR-like triple
(`SparseCodes`) so that TopK (k per row) and BatchTopK (a variable count per row) share one
path: `F.embedding_bag` gathers k decoder rows per sample instead of multiplying zeros.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


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
        counts = torch.diff(self.offsets, append=self.offsets.new_tensor([self.units.numel()]))
        return torch.repeat_interleave(torch.arange(self.n_rows, device=self.units.device), counts)

    def to_dense(self, n_units: int) -> Tensor:
        """(B, n_units) dense codes."""
        dense = self.values.new_zeros(self.n_rows, n_units)
        dense[self.rows(), self.units] = self.values
        return dense


def preacts_topk(
    xc_BD: Tensor, W_enc: Tensor, b_enc: Tensor, k: int, chunk_rows: int = 512
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Dense pre-activations and their per-row top-k, without gradients.

    Returns (pre (B, n_units), values (B*k,), units (B*k,), offsets (B,)). Row chunks keep
    each block of pre-activations in cache between the matmul and its top-k.
    """
    n_rows, n_units = xc_BD.shape[0], W_enc.shape[1]
    with torch.no_grad():
        pre_BU = xc_BD.new_empty(n_rows, n_units)
        values_BK = xc_BD.new_empty(n_rows, k)
        units_BK = torch.empty(n_rows, k, dtype=torch.long, device=xc_BD.device)
        for start in range(0, n_rows, chunk_rows):
            rows = slice(start, start + chunk_rows)
            torch.addmm(b_enc.detach(), xc_BD[rows], W_enc.detach(), out=pre_BU[rows])
            torch.topk(pre_BU[rows], k, dim=1, sorted=False, out=(values_BK[rows], units_BK[rows]))
    offsets = torch.arange(0, n_rows * k, k, device=xc_BD.device)
    return pre_BU, values_BK.reshape(-1), units_BK.reshape(-1), offsets


def batch_topk_units(pre_BU: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Top k*B pre-activations over the whole batch: (units, offsets, smallest value kept).

    A flat top-k over B*n_units values is slow, so first take each row's top `4k` candidates;
    the result is exact unless some row had more winners than candidates, which we detect and
    then redo with the flat top-k.
    """
    n_rows, n_units = pre_BU.shape
    n_keep = min(k * n_rows, n_rows * n_units)
    cap = min(n_units, 4 * k)
    cand_vals, cand_units = pre_BU.topk(cap, dim=1, sorted=False)
    kept_vals, kept_pos = cand_vals.reshape(-1).topk(n_keep, sorted=False)
    cutoff = kept_vals.min()
    row_minima = cand_vals.min(dim=1).values
    if cap < n_units and bool((row_minima > cutoff).any()):
        # some row may have more than `cap` winners: exact (slow) path
        kept_vals, flat = pre_BU.reshape(-1).topk(n_keep, sorted=False)
        cutoff = kept_vals.min()
        flat = flat.sort().values
        rows, units = flat // n_units, flat % n_units
    else:
        kept_pos = kept_pos.sort().values
        rows = kept_pos // cap
        units = cand_units.reshape(-1)[kept_pos]
    counts = torch.bincount(rows, minlength=n_rows)
    offsets = torch.cumsum(counts, 0) - counts
    return units, offsets, cutoff


class _GatheredPreacts(torch.autograd.Function):
    """pre[b, u] = (x[b] - b_dec) . W_enc[:, u] + b_enc[u], read at the selected (b, u) only.

    The forward reads values from a dense no-grad matmul; the backward touches only the
    selected entries: dW_enc[:, u] = sum_b g[b, u] (x[b] - b_dec), computed by the weight
    gradient of an embedding_bag (a sorted scatter-add, no B x n_units zeros).
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
        grad_b_enc = grad_N.new_zeros(n_units).index_add_(0, units, grad_N)
        grad_W_enc = None
        if ctx.needs_input_grad[4]:
            with torch.enable_grad():
                scratch_UD = xc_BD.new_zeros(n_units, xc_BD.shape[1], requires_grad=True)
                bags = F.embedding_bag(
                    units, scratch_UD, offsets, mode="sum", per_sample_weights=grad_N.detach()
                )
                (grad_UD,) = torch.autograd.grad(bags, scratch_UD, xc_BD)
            grad_W_enc = grad_UD.t()
        # d pre / d b_dec = -W_enc[:, u], summed over the selected entries
        grad_b_dec = -(W_enc @ grad_b_enc) if ctx.needs_input_grad[6] else None
        return None, None, None, None, grad_W_enc, grad_b_enc, grad_b_dec


def gathered_preacts(
    pre_BU: Tensor,
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
    `xc_BD` is x - b_dec, detached.
    """
    if values is None:
        rows = SparseCodes(units, offsets, units, xc_BD.shape[0]).rows()
        values = pre_BU[rows, units]
    out: Tensor = _GatheredPreacts.apply(
        values.detach(), units, offsets, xc_BD.detach(), W_enc, b_enc, b_dec
    )
    return out


def decode_sparse(codes: SparseCodes, W_dec: Tensor) -> Tensor:
    """sum_u codes[b, u] W_dec[u] for each row b, gathering only the stored units (no bias)."""
    return F.embedding_bag(
        codes.units, W_dec, codes.offsets, mode="sum", per_sample_weights=codes.values
    )


def _rectangle(z: Tensor) -> Tensor:
    return ((z > -0.5) & (z < 0.5)).to(z.dtype)


class _JumpReLU(torch.autograd.Function):
    """x * H(x - theta); d/dtheta uses a rectangle kernel of width `bandwidth` (STE)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return x * (x > threshold)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_x = (x > threshold) * grad
        grad_t = -(threshold / eps) * _rectangle((x - threshold) / eps) * grad
        return grad_x, grad_t.sum(0), None


class _Step(torch.autograd.Function):
    """H(x - theta) with a straight-through gradient to theta only (for the L0 penalty)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return (x > threshold).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_t = -(1.0 / eps) * _rectangle((x - threshold) / eps) * grad
        return None, grad_t.sum(0), None


def jumprelu(x_BU: Tensor, threshold_U: Tensor, bandwidth: float) -> Tensor:
    """JumpReLU with straight-through gradients to the per-unit threshold."""
    out: Tensor = _JumpReLU.apply(x_BU, threshold_U, bandwidth)
    return out


def step_count(x_BU: Tensor, threshold_U: Tensor, bandwidth: float) -> Tensor:
    """(B,) number of units above threshold per row, differentiable w.r.t. the threshold."""
    out: Tensor = _Step.apply(x_BU, threshold_U, bandwidth)
    return out.sum(dim=1)
