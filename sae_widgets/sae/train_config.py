"""Training hyperparameters (`TrainConfig`) and the plan they imply: the default learning
rate of an activation and the number of steps a fit will take.

Kept apart from the loop (`sae.training`) so that views (the TrainingMonitor's ETA) and the
estimator read the plan without the optimiser's machinery.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sae_widgets.sae import registry


@dataclass
class TrainConfig:
    """Optimisation hyperparameters (the architecture lives in SAEConfig)."""

    lr: float | None = None
    """Adam learning rate; None picks a default for the activation (see `default_lr`)."""
    batch_size: int = 4096
    """Samples per step (fit shrinks it for small data, see `min_steps_per_epoch`)."""
    min_steps_per_epoch: int = 32
    """fit uses batches of at most n / min_steps_per_epoch samples so small data still trains."""
    warmup_steps: int | None = None
    """Linear learning-rate warm-up; None: 5% of fit's steps (10 for partial_fit)."""
    decay_fraction: float = 0.5
    """fit decays the learning rate linearly to 0 over this final fraction of its steps
    (a long decay lets redundant units settle instead of dying)."""
    grad_clip: float = 1.0
    """Maximum global gradient norm (0 disables clipping)."""
    aux_coeff: float = 1 / 32
    """Weight of the AuxK loss (sparse-training activations: topk, batchtopk, matryoshka)."""
    k_aux: int | None = None
    """Dead units used by AuxK per sample; None: d_in // 2."""
    dead_window: int = 65_536
    """A unit that has not fired for this many training samples counts as dead."""
    l1_coeff: float = 1.0
    """relu: weight of the decoder-norm weighted L1 penalty (Anthropic's lambda: the loss is
    (||x - x_hat||^2 + l1_coeff * sum_u f_u ||W_dec[u]||) / variance, in training space)."""
    l0_coeff: float = 0.004
    """jumprelu: a unit must explain about this fraction of a sample's variance to fire."""
    l1_warmup_steps: int | None = None
    """relu/jumprelu: the sparsity weight ramps up linearly over these steps; None: warm-up."""
    log_every: int | None = None
    """Log metrics every this many steps; None: about 50 points per fit."""
    shuffle: bool = True
    """fit visits samples in a fresh random order each epoch."""
    shuffle_buffer: int | None = 2**17
    """Rows shuffled together (see `sae.batches`): data up to this size is fully shuffled;
    larger data (a store on disk) is read and shuffled one window of this many rows at a time.
    None: always the whole data."""


def train_config_of(params: Mapping[str, Any]) -> TrainConfig:
    """The TrainConfig of an `SAE`'s (checked) parameters: its optimisation subset, numbers
    as Python floats (an int 2**64 overflowed torch), grad_clip None as 0 (no clipping)."""
    lr, grad_clip = params["lr"], params["grad_clip"]
    return TrainConfig(
        lr=None if lr is None else float(lr),
        grad_clip=0.0 if grad_clip is None else float(grad_clip),
        decay_fraction=float(params["decay_fraction"]),
        aux_coeff=float(params["aux_coeff"]),
        l1_coeff=float(params["l1_coeff"]),
        l0_coeff=float(params["l0_coeff"]),
        **{name: params[name] for name in _PASSED_AS_IS},
    )


_PASSED_AS_IS = (
    "batch_size",
    "min_steps_per_epoch",
    "warmup_steps",
    "k_aux",
    "dead_window",
    "log_every",
    "shuffle",
    "shuffle_buffer",
)


def default_lr(activation: str, n_units: int) -> float:
    """Learning rate that works without tuning (the registry's, e.g. 0.1 / sqrt(n_units) for
    the TopK family)."""
    return registry.get(activation).default_lr(n_units)


def fit_batch_size(batch_size: int, n_samples: int, min_steps_per_epoch: int) -> int:
    """The batch `fit` uses: at most n / min_steps_per_epoch rows so small data still gets
    steps, but never fewer than 2 (a one-row batch has no variance to measure FVU against)
    unless batch_size itself is smaller."""
    return max(1, min(batch_size, max(2, n_samples // min_steps_per_epoch)))


def planned_steps(sae: Any, n_samples: int) -> int | None:
    """Total optimizer steps a fit of `n_samples` will take, or None if the SAE cannot say.

    Prefers the estimator's own answer (a `planned_steps(n)` method); otherwise follows
    `SAE.fit`: the batch shrinks to at most n // min_steps_per_epoch, and each of the
    `epochs` passes takes ceil(n / batch) steps.
    """
    method = getattr(sae, "planned_steps", None)
    if callable(method):
        return int(method(n_samples))
    epochs, batch_size = getattr(sae, "epochs", None), getattr(sae, "batch_size", None)
    min_steps = getattr(sae, "min_steps_per_epoch", 1)
    if not (
        isinstance(epochs, int)
        and isinstance(batch_size, int)
        and isinstance(min_steps, int)
        and min(epochs, batch_size, min_steps) > 0
    ):
        return None
    batch = fit_batch_size(batch_size, n_samples, min_steps)
    return int(epochs * math.ceil(n_samples / batch))
