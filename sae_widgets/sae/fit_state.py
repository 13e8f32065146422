"""What a fit creates, and what a failed fit gives back.

`fit` replaces an estimator's fitted state (`FIT_STATE`: the module, its input width, the
history and counters, the trainer) with a fresh module (`new_module`). A fit that fails
before its first optimiser step (bad parameters found late, memory, a callback error on
set-up) leaves the previous fit as it was (`replacing_fit`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from sae_widgets.memory import check_memory
from sae_widgets.sae.model import SAEConfig, SparseAutoencoder

__all__ = ["FIT_STATE", "new_module", "replacing_fit"]

FIT_STATE = (
    "model_",
    "n_features_in_",
    "history_",
    "n_steps_",
    "n_samples_seen_",
    "stop_reason_",
    "fit_steps_",
    "_trainer",
)
"""What fit replaces; restored if fit fails before its first training step."""


def new_module(
    params: dict[str, Any], d_in: int, seed: int, device: torch.device
) -> SparseAutoencoder:
    """A fresh SparseAutoencoder of the estimator's `params` (n_units, activation, k,
    prefix_sizes) for inputs of width `d_in`, initialised from `seed`, on `device`."""
    n_units = params["n_units"]
    if device.type == "cpu" and isinstance(n_units, int) and not isinstance(n_units, bool):
        # training holds the weights, their gradients and Adam's two moments: 4 copies
        check_memory(
            4 * 8 * d_in * n_units,
            f"training n_units={n_units} on {d_in} features (weights, gradients and Adam state)",
            "ask for fewer units",
        )
    prefix_sizes = params["prefix_sizes"]
    cfg = SAEConfig(
        d_in=d_in,
        n_units=n_units,
        activation=params["activation"],
        k=params["k"],
        prefix_sizes=None if prefix_sizes is None else tuple(prefix_sizes),
    )
    generator = torch.Generator().manual_seed(seed)
    return SparseAutoencoder(cfg, generator=generator).to(device)


@contextmanager
def replacing_fit(estimator: Any) -> Iterator[None]:
    """Drop `estimator`'s fitted state for the fit run inside; if that fit raises before
    its first step (``n_steps_`` still 0), put the previous state back."""
    state = estimator.__dict__
    previous = {key: state.pop(key) for key in FIT_STATE if key in state}
    try:
        yield
    except Exception:
        if getattr(estimator, "n_steps_", 0) == 0:  # failed before training: keep the old fit
            for key in FIT_STATE:
                state.pop(key, None)
            state.update(previous)
        raise
