"""The optimizer side of a training step: Adam's implementation and gradient clipping."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from sae_widgets.sae import device_paths


def fused_adam(device: torch.device) -> bool | None:
    """Adam's implementation for a device: the fused one-pass kernel on CPU and CUDA (the same
    update; on CPU 3-4x faster than the default multi-tensor one), torch's default (None)
    elsewhere."""
    return True if device.type in ("cpu", "cuda") else None


def clip_grad_norm_(parameters: Iterable[Tensor], max_norm: float) -> None:
    """`torch.nn.utils.clip_grad_norm_` (the same total norm and the same scaling), except
    that on CPU gradients whose norm is within `max_norm` are left alone: torch multiplies
    every gradient by 1.0 then, a pass over all of them (2 x n_units x d values) for no
    change. Elsewhere torch's (a test of the norm would wait for the device)."""
    params = list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    if not all(device_paths.cpu_kernels(grad) for grad in grads):
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        return
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coef = max_norm / (total + 1e-6)
    if not bool(coef >= 1.0):  # torch scales by min(coef, 1): a norm above, or NaN
        for grad in grads:
            grad.mul_(coef)
