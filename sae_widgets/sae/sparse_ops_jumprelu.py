"""The straight-through estimators of JumpReLU: the gate and the L0 count, differentiable
with respect to each unit's threshold through a rectangle kernel of width `bandwidth`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


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
