"""A sparse step's reconstruction and its squared error in one pass over the batch (CPU).

After the gathered decode (torch's embedding_bag, whose gather prefetches), one compiled pass
(sae/_numba_sparse_grads.py) adds b_dec, forms the residual x_hat - x and sums what the loss
and the FVU need: the squared error, the residual's column sums (b_dec's gradient), and the
input's squares and column sums (the batch variance, sum x^2 - (sum x)^2 / B in float64).
As torch ops these were six passes over (B, d) and a seventh in the backward, which scaled
the residual by the loss's 2 g; here that scale goes to the B k per-entry products instead.
Measured on the small shape of benchmarks/train_throughput.py: ~9 ms of a ~98 ms step in
those passes (torch.profiler, machine shared).

`reconstruct` returns None where it does not apply (no numba, not CPU float32/64, an input
that needs its own gradient); the caller then runs the torch ops.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.profiler import record_function

from sae_widgets.sae import scratch, sparse_grads
from sae_widgets.sae.sparse_ops import SparseCodes

BLOCK_ROWS = 256
"""Rows per block of column sums (fixed, so the sums' order does not follow the threads)."""


class _ResidualSums(torch.autograd.Function):
    """(x_hat, squared error, batch variance) of sparse codes decoded with W_dec and b_dec."""

    @staticmethod
    def forward(
        ctx: Any,
        values: Tensor,
        units: Tensor,
        offsets: Tensor,
        W_dec: Tensor,
        b_dec: Tensor,
        x_BD: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        kernels = sparse_grads.compiled(W_dec, x_BD)
        assert kernels is not None
        x_hat_BD = F.embedding_bag(units, W_dec, offsets, mode="sum", per_sample_weights=values)
        n_rows, d = x_BD.shape
        n_blocks = -(-n_rows // BLOCK_ROWS)
        diff_BD = scratch.buffer("residual", (n_rows, d), x_BD)
        row_sums = np.empty((n_rows, 2))
        col_sums = np.empty((n_blocks, 2, d))
        x_hat, x, b = x_hat_BD.numpy(), x_BD.detach().contiguous().numpy(), b_dec.detach().numpy()
        diff = diff_BD.numpy()

        def blocks(lo: int, hi: int) -> None:
            kernels.residual_sums(x_hat, b, x, BLOCK_ROWS, lo, hi, diff, row_sums, col_sums)

        with record_function("sae::residual_sums"):
            sparse_grads.run_split(n_blocks, n_rows * d // 16, blocks)
        err, squares = row_sums.sum(0)
        diff_cols, x_cols = col_sums.sum(0)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN / inf data: a NaN loss
            if n_rows == 1:  # one row has no variance: relative to its squared norm instead
                total_var = squares + 1e-30
            else:
                total_var = max(squares - x_cols @ x_cols / n_rows, 1e-8 * squares + 1e-30)
        ctx.save_for_backward(values, units, offsets, W_dec, diff_BD)
        ctx.diff_cols = torch.from_numpy(diff_cols).to(x_BD.dtype)
        ctx.set_materialize_grads(False)
        as_tensor = lambda v: torch.tensor(v, dtype=x_BD.dtype)  # noqa: E731
        total = as_tensor(total_var)
        ctx.mark_non_differentiable(total)
        return x_hat_BD, as_tensor(err), total

    @staticmethod
    def backward(
        ctx: Any, grad_x_hat: Tensor | None, grad_err: Tensor | None, _: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        values, units, offsets, W_dec, diff_BD = ctx.saved_tensors
        scale: Tensor | None = None
        if grad_x_hat is None:
            if grad_err is None:
                return (None,) * 6
            # the usual step: only the loss reads x_hat, so its gradient is 2 g diff
            scale = 2 * grad_err
            rows_BD, weights, col_grad = diff_BD, values * scale, ctx.diff_cols * scale
        else:  # the reconstruction has a gradient of its own
            rows_BD = grad_x_hat if grad_err is None else grad_x_hat + 2 * grad_err * diff_BD
            rows_BD = rows_BD.contiguous()
            weights, col_grad = values, rows_BD.sum(0)
        grad_values = grad_W_dec = grad_b_dec = None
        if ctx.needs_input_grad[0]:  # one dot product per entry: rows[b] . W_dec[unit]
            grad_values = sparse_grads.entry_dots(rows_BD, W_dec, units, offsets)
            if scale is not None:
                grad_values = grad_values * scale
        if ctx.needs_input_grad[3]:
            n_units = W_dec.shape[0]
            grad_W_dec = sparse_grads.unit_sums(units, offsets, weights, rows_BD, n_units)[0]
        if ctx.needs_input_grad[4]:
            grad_b_dec = col_grad
        return grad_values, None, None, grad_W_dec, grad_b_dec, None


def reconstruct(
    codes: SparseCodes, W_dec: Tensor, b_dec: Tensor, x_BD: Tensor
) -> tuple[Tensor, Tensor, Tensor] | None:
    """(x_hat = codes @ W_dec + b_dec, sum (x_hat - x)^2, the batch's total variance), the
    first two differentiable in the codes' values, W_dec and b_dec; None: use torch ops."""
    if (
        x_BD.requires_grad
        or x_BD.shape[0] == 0
        or sparse_grads.compiled(W_dec, b_dec, x_BD, codes.values) is None
    ):
        return None
    out: tuple[Tensor, Tensor, Tensor] = _ResidualSums.apply(
        codes.values, codes.units, codes.offsets, W_dec, b_dec, x_BD
    )
    return out
