"""The activation registry: one row of facts per SAE architecture.

Everything outside an activation's own forward pass asks this table instead of comparing
names: the module (which threshold it keeps, how its encoder starts), the trainer (penalty,
coefficient, learning rate, sparse steps), the estimator's parameter checks, the checkpoint
writer and readers (SAELens names) and the CLI (its `--activation` choices).

Adding an architecture takes two files: a row here, and a module holding its forward pass
(an object with `encode` and `train`, see `sae_widgets.sae.forward.Forward`) that the row
names in `forward`. This module is plain data (no torch) so the CLI can read it cheaply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

KRole = Literal["architecture", "init", "unused"]
ThresholdKind = Literal["none", "learned", "running"]
Penalty = Literal["none", "l1", "l0"]


@dataclass(frozen=True)
class ActivationSpec:
    """What the rest of the library needs to know about one activation."""

    name: str
    """The `activation=` value users type."""
    summary: str
    """One line for docs and `--help`."""
    k: KRole
    """"architecture": k active units (per sample or on average) define the model, k is
    required and saved; "init": k is a training hint (the L0 the thresholds start at), saved
    with the parameters; "unused"."""
    threshold: ThresholdKind
    """"learned": a trained per-unit threshold (read it with `SparseAutoencoder.threshold`);
    "running": per-unit threshold estimated from each batch's cut-off during training and
    used at inference (JumpReLU style); "none"."""
    sparse_training: bool
    """Training keeps codes sparse after the encoder matmul (gathered decoder, AuxK loss for
    dead units weighted by `aux_coeff`)."""
    penalty: Penalty
    """Sparsity penalty added to the loss ("l1": decoder-norm weighted L1, "l0": a
    straight-through L0 count); "none" when sparsity comes from the selection."""
    coeff: str | None
    """Name of the estimator / TrainConfig parameter weighting `penalty`."""
    lr: float
    """Default Adam learning rate (divided by sqrt(n_units) when `lr_width_scaled`)."""
    lr_width_scaled: bool
    small_encoder_init: bool
    """The encoder starts as 0.1 x the decoder's transpose: activations that start with
    about half the units firing would otherwise reconstruct ~10x the input."""
    saelens_architecture: str
    """SAELens' `architecture` we write: the inference architecture SAELens loads."""
    saelens_reads: tuple[str, ...]
    """SAELens `architecture` values (training and inference configs) read as this one."""
    forward: str
    """"module:attribute" of the forward pass (resolved lazily, see `forward_of`)."""
    prefixes: bool = False
    """Nested prefixes of units each trained to reconstruct (Matryoshka): the config keeps
    their sizes (`prefix_sizes`)."""

    @property
    def per_sample_k(self) -> bool:
        """Exactly k units per sample at inference (k is the architecture, no threshold)."""
        return self.k == "architecture" and self.threshold == "none"

    def default_lr(self, n_units: int) -> float:
        """Learning rate that works without tuning for `n_units` units."""
        return self.lr / math.sqrt(n_units) if self.lr_width_scaled else self.lr


_ROWS = (
    ActivationSpec(
        name="relu",
        summary="ReLU with a decoder-norm weighted L1 penalty (l1_coeff)",
        k="unused",
        threshold="none",
        sparse_training=False,
        penalty="l1",
        coeff="l1_coeff",
        lr=3e-3,
        lr_width_scaled=False,
        small_encoder_init=True,
        saelens_architecture="standard",
        saelens_reads=("standard",),
        forward="sae_widgets.sae.forward:RELU",
    ),
    ActivationSpec(
        name="topk",
        summary="the k largest units of each sample",
        k="architecture",
        threshold="none",
        sparse_training=True,
        penalty="none",
        coeff=None,
        lr=0.1,
        lr_width_scaled=True,
        small_encoder_init=False,
        saelens_architecture="topk",
        saelens_reads=("topk",),
        forward="sae_widgets.sae.forward:TOPK",
    ),
    ActivationSpec(
        name="batchtopk",
        summary="the k * batch largest units of a batch; a JumpReLU threshold at inference",
        k="architecture",
        threshold="running",
        sparse_training=True,
        penalty="none",
        coeff=None,
        lr=0.1,
        lr_width_scaled=True,
        small_encoder_init=False,
        saelens_architecture="jumprelu",
        saelens_reads=("batchtopk",),
        forward="sae_widgets.sae.forward:BATCHTOPK",
    ),
    ActivationSpec(
        name="jumprelu",
        summary="learned per-unit thresholds with an L0 penalty (l0_coeff)",
        k="init",
        threshold="learned",
        sparse_training=False,
        penalty="l0",
        coeff="l0_coeff",
        lr=3e-3,
        lr_width_scaled=False,
        small_encoder_init=True,
        saelens_architecture="jumprelu",
        saelens_reads=("jumprelu", "gated"),  # gated: a JumpReLU at inference (formats/gated.py)
        forward="sae_widgets.sae.forward:JUMPRELU",
    ),
    ActivationSpec(
        name="matryoshka_batchtopk",
        summary="BatchTopK whose nested prefixes of units each reconstruct (Matryoshka)",
        k="architecture",
        threshold="running",
        sparse_training=True,
        penalty="none",
        coeff=None,
        lr=0.1,
        lr_width_scaled=True,
        small_encoder_init=False,
        saelens_architecture="jumprelu",
        saelens_reads=("matryoshka_batchtopk",),
        forward="sae_widgets.sae.matryoshka:MATRYOSHKA_BATCHTOPK",
        prefixes=True,
    ),
)

REGISTRY: dict[str, ActivationSpec] = {row.name: row for row in _ROWS}
"""Every activation by name, in the order users see them."""

ACTIVATIONS: tuple[str, ...] = tuple(REGISTRY)
"""The valid `activation=` values."""


def get(name: object, argument: str = "activation") -> ActivationSpec:
    """The row of `name`, or a ValueError naming the argument, the value and the choices."""
    row = REGISTRY.get(name) if isinstance(name, str) else None
    if row is None:
        raise ValueError(f"{argument} must be one of {', '.join(ACTIVATIONS)}; got {name!r}")
    return row


def from_saelens(architecture: object) -> ActivationSpec | None:
    """The activation a SAELens `architecture` value is read as (None if unknown)."""
    for row in _ROWS:
        if architecture in row.saelens_reads:
            return row
    return None


def saelens_architectures() -> tuple[str, ...]:
    """Every SAELens architecture name we read."""
    return tuple(name for row in _ROWS for name in row.saelens_reads)


def default_prefix_sizes(n_units: int) -> tuple[int, ...]:
    """Nested prefix sizes of a Matryoshka SAE: n_units, n_units/4, n_units/16, ... down to
    at least 16 units (at most 5 levels), smallest first. A dictionary of fewer than 64 units
    gets two levels when it can, else one."""
    sizes = [n_units]
    while len(sizes) < 5 and sizes[-1] // 4 >= 16:
        sizes.append(sizes[-1] // 4)
    if len(sizes) == 1 and n_units >= 4:
        sizes.append(n_units // 4)
    return tuple(sorted(sizes))


__all__ = [
    "ACTIVATIONS",
    "REGISTRY",
    "ActivationSpec",
    "default_prefix_sizes",
    "from_saelens",
    "get",
]
