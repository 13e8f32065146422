"""sae.optim's gradient clipping gives torch's gradients, bit for bit."""

from __future__ import annotations

import pytest
import torch

from sae_widgets.sae.optim import clip_grad_norm_


@pytest.mark.parametrize("max_norm", [0.05, 1.0, 1e6])
def test_clip_grad_norm_equals_torch(max_norm: float) -> None:
    gen = torch.Generator().manual_seed(0)
    shapes = [(64, 16), (16,), (16, 64), (64,)]
    grads = [torch.randn(shape, generator=gen) for shape in shapes]

    def params() -> list[torch.nn.Parameter]:
        out = []
        for grad in grads:
            p = torch.nn.Parameter(torch.zeros_like(grad))
            p.grad = grad.clone()
            out.append(p)
        out.append(torch.nn.Parameter(torch.zeros(3)))  # no gradient: skipped by both
        return out

    ours, theirs = params(), params()
    clip_grad_norm_(ours, max_norm)
    torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    for a, b in zip(ours, theirs, strict=True):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None and b.grad is not None:
            assert torch.equal(a.grad, b.grad)
    changed = any(not torch.equal(p.grad, g) for p, g in zip(ours, grads, strict=False))
    assert changed == (max_norm < 40)  # the gradients' norm is ~46
