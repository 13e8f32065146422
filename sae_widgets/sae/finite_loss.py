"""Stopping training at a non-finite loss, with the weights of the last good step.

CPU: the loss is read at each step, before its backward (reading it costs nothing there).
A GPU with fused Adam: reading it would make the host wait for the device on every step, so
a device-side flag makes Adam skip that step's update and every later one (its `found_inf`,
as torch's GradScaler does), and the error is raised when the host next reads the metrics
(`raise_if_seen`: a log step, or the end of training), naming the first bad step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sae_widgets.sae import device_paths

MAX_PENDING = 1024
"""Deferred: steps flagged before a read is forced (bounds the list between log steps)."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the weights are those of the last good step."""


class FiniteLoss:
    """The training loop's check of each step's loss (see the module docstring)."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, device: torch.device, world: int = 1
    ) -> None:
        self.optimizer = optimizer
        fused = bool(optimizer.defaults.get("fused"))
        on_gpu = not device_paths.cpu_kernels(torch.empty(0, device=device))
        # one process only: ranks whose losses differ would skip different updates
        self.deferred = fused and on_gpu and world == 1
        self.pending: list[tuple[int, float, Tensor]] = []  # (step, lr, loss) not yet read
        self.skipped: Tensor | None = None  # deferred: 1.0 once a loss was not finite

    def check(self, loss: Tensor, step: int, lr: float) -> None:
        """Raise now (CPU), or flag the step on the device (deferred)."""
        if not self.deferred:
            value = float(loss)
            if not math.isfinite(value):
                raise _error(value, step, lr)
            return
        bad = (~torch.isfinite(loss)).float()
        self.skipped = bad if self.skipped is None else torch.maximum(self.skipped, bad)
        self.optimizer.found_inf = self.skipped  # type: ignore[attr-defined]
        self.pending.append((step, lr, loss))
        if len(self.pending) >= MAX_PENDING:
            self.raise_if_seen()

    def unless_skipped(self, updated: Tensor, current: Tensor) -> Tensor:
        """`updated`, or `current` once updates are being skipped (deferred)."""
        if self.skipped is None:
            return updated
        return torch.where(self.skipped > 0, current, updated)

    def raise_if_seen(self) -> None:
        """Deferred: raise for the first non-finite loss since the last read (one wait)."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        losses = torch.stack([loss for _, _, loss in pending]).cpu()
        bad = (~torch.isfinite(losses)).nonzero()
        if bad.numel() == 0:
            return
        first = int(bad[0])
        step, lr, _ = pending[first]
        self.skipped = None  # the weights are the last good step's: training may resume
        self.optimizer.found_inf = None  # type: ignore[attr-defined]
        raise _error(float(losses[first]), step, lr)


def _error(value: float, step: int, lr: float) -> NonFiniteLossError:
    return NonFiniteLossError(
        f"the training loss became {value} at step {step}. Try a lower learning rate "
        f"(lr={lr:.3g} now), a smaller grad_clip, or check the input for extreme values; the "
        "model keeps the weights of the last good step."
    )
