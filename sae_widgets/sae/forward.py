"""Forward passes of the built-in activations (relu, topk, batchtopk, jumprelu).

Each activation's registry row names an object here (or in its own module) with two methods:
`encode` (inference codes, dense) and `train` (the training forward: reconstruction, codes,
loss terms). The module (`SparseAutoencoder`) owns the weights and dispatches to them, so it
never branches on the activation's name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, NamedTuple, Protocol

import torch
from torch import Tensor

from sae_widgets.sae import (
    batch_topk_selection,
    distributed,
    sparse_kernels,
    sparse_residual,
    topk_selection,
)
from sae_widgets.sae.auxk import aux_fvu_of, aux_units
from sae_widgets.sae.fvu import fvu_of
from sae_widgets.sae.sparse_ops import (
    SparseCodes,
    affine_preacts,
    batch_topk_units,
    decode_sparse,
    gathered_preacts,
)
from sae_widgets.sae.sparse_ops_jumprelu import jumprelu, step_count
from sae_widgets.sae.sparse_ops_threads import matmul_threads

if TYPE_CHECKING:  # pragma: no cover
    from sae_widgets.sae.model import SparseAutoencoder
    from sae_widgets.sae.registry import ActivationSpec


class ForwardOutput(NamedTuple):
    """What `SparseAutoencoder.forward` returns."""

    reconstruction: Tensor
    """(B, d_in) decoded input."""
    codes: Tensor
    """(B, n_units) dense unit activations."""
    fvu: Tensor
    """Fraction of variance unexplained over this batch (differentiable)."""
    sparsity: Tensor
    """Sparsity penalty / batch variance: norm-weighted L1 (relu), d_in x L0 (jumprelu)."""
    aux_fvu: Tensor
    """AuxK loss: how well dead units reconstruct the residual (0 when none are dead)."""
    l0: Tensor
    """Mean number of active units per sample (no gradient)."""


class TrainOutput(NamedTuple):
    """Like ForwardOutput, but codes stay sparse for sparse-training activations."""

    reconstruction: Tensor
    codes: SparseCodes | Tensor
    fvu: Tensor
    sparsity: Tensor
    aux_fvu: Tensor
    l0: Tensor
    batch_threshold: Tensor | None
    """Running-threshold activations in training: the smallest activation kept."""
    extra_loss: Tensor | None = None
    """Loss added with weight 1 beside `fvu` (Matryoshka: the inner prefixes' FVU)."""


class Forward(Protocol):
    """An activation's forward pass (the object its registry row names). Optionally a
    `gate(model)` method: (n_units,) cut-offs c when `encode` is pre * (pre > c), which lets
    encoding run the compiled gate (sae/encoding.py)."""

    def encode(self, model: SparseAutoencoder, pre_BU: Tensor) -> Tensor:
        """(B, n_units) dense inference codes from the pre-activations."""
        ...

    def train(
        self,
        model: SparseAutoencoder,
        x_BD: Tensor,
        dead_mask: Tensor | None,
        k_aux: int | None,
    ) -> TrainOutput:
        """The training forward (also used by `forward` in eval mode)."""
        ...


@cache
def forward_of(spec: ActivationSpec) -> Forward:
    """The forward-pass object a registry row names ("module:attribute")."""
    module_name, _, attribute = spec.forward.partition(":")
    forward: Forward = getattr(importlib.import_module(module_name), attribute)
    return forward


def threshold_gate(model: SparseAutoencoder, pre_BU: Tensor) -> Tensor:
    """JumpReLU-style inference: keep pre-activations above the unit's threshold and 0."""
    threshold = model.threshold
    assert threshold is not None
    # masked_fill, not pre * mask: a negative value times 0 is -0.0
    return pre_BU.masked_fill(~((pre_BU > threshold) & (pre_BU > 0)), 0.0)


# ------------------------------------------------------------------------ dense training
def _dense_output(
    model: SparseAutoencoder, x_BD: Tensor, codes_BU: Tensor, penalty: Tensor
) -> TrainOutput:
    x_hat_BD = model.decode(codes_BU)
    fvu, total_var = fvu_of(x_BD, x_hat_BD)
    l0 = (codes_BU != 0).sum(dim=1).float().mean().detach()
    zero = fvu.new_zeros(())
    return TrainOutput(x_hat_BD, codes_BU, fvu, penalty / total_var, zero, l0, None)


def threshold_cut(model: SparseAutoencoder) -> Tensor:
    """(n_units,) cut-offs of `threshold_gate`: a value is kept where above max(threshold, 0)."""
    threshold = model.threshold
    assert threshold is not None
    return threshold.detach().clamp_min(0)


class ReLUForward:
    """relu: codes = relu(pre); penalty: L1 of the codes weighted by decoder norms."""

    def encode(self, model: SparseAutoencoder, pre_BU: Tensor) -> Tensor:
        return torch.relu(pre_BU)

    def gate(self, model: SparseAutoencoder) -> Tensor:
        """Inference keeps each value above 0 (see `SparseAutoencoder.inference_cut`)."""
        return model.W_enc.new_zeros(model.cfg.n_units)

    def train(
        self, model: SparseAutoencoder, x_BD: Tensor, dead_mask: Tensor | None, k_aux: int | None
    ) -> TrainOutput:
        codes_BU = torch.relu(model.preacts(x_BD))
        penalty = (codes_BU * model.W_dec.norm(dim=1)).sum()
        return _dense_output(model, x_BD, codes_BU, penalty)


class JumpReLUForward:
    """jumprelu: pre * (pre > threshold), straight-through gradients to the threshold."""

    def encode(self, model: SparseAutoencoder, pre_BU: Tensor) -> Tensor:
        return threshold_gate(model, pre_BU)

    def gate(self, model: SparseAutoencoder) -> Tensor:
        return threshold_cut(model)

    def train(
        self, model: SparseAutoencoder, x_BD: Tensor, dead_mask: Tensor | None, k_aux: int | None
    ) -> TrainOutput:
        pre_BU = model.preacts(x_BD)
        threshold = model.threshold
        assert threshold is not None
        bandwidth = model.cfg.bandwidth
        codes_BU = jumprelu(pre_BU, threshold, bandwidth)
        # scaled by d_in: l0_coeff is then the share of a sample's variance (~d_in in
        # training space) that a unit must explain to be worth firing
        penalty = step_count(pre_BU, threshold, bandwidth).sum() * model.cfg.d_in
        return _dense_output(model, x_BD, codes_BU, penalty)


# ------------------------------------------------------------------------ sparse training
class Selection(NamedTuple):
    """Which (sample, unit) pairs a sparse step keeps, from grad-free pre-activations."""

    pre_BU: Tensor | None
    """All pre-activations; None where the selection kept only `dead_BU`."""
    units: Tensor
    offsets: Tensor
    selected: Tensor | None
    """Pre-activation values at the selection when already known (saves a gather)."""
    batch_threshold: Tensor | None
    dead_BU: Tensor | None = None
    """The dead units' pre-activations (AuxK), where the selection kept them apart."""


class SparseStep(NamedTuple):
    """A sparse step's selection, its differentiable codes and the centred input."""

    selection: Selection
    codes: SparseCodes
    xc_BD: Tensor


def sparse_codes(
    model: SparseAutoencoder,
    x_BD: Tensor,
    select: Callable[[SparseAutoencoder, Tensor], Selection],
) -> SparseStep:
    """Differentiable codes at the units `select(model, x - b_dec)` picks (the encoder
    backward touches the selection only)."""
    xc_BD = (x_BD - model.b_dec).detach()
    s = select(model, xc_BD)
    values = torch.relu(
        gathered_preacts(
            s.pre_BU, s.units, s.offsets, xc_BD, model.W_enc, model.b_enc, model.b_dec, s.selected
        )
    )
    return SparseStep(s, SparseCodes(s.units, s.offsets, values, x_BD.shape[0]), xc_BD)


def select_topk(
    model: SparseAutoencoder, xc_BD: Tensor, dead_units: Tensor | None = None
) -> Selection:
    """The k largest of each sample (and the pre-activations of `dead_units`, for AuxK)."""
    assert model.cfg.k is not None
    top = topk_selection.select(
        xc_BD, model.W_enc, model.b_enc, model.cfg.k, dead_units, model.matmul_dtype
    )
    return Selection(top.pre_BU, top.units, top.offsets, top.values, None, top.dead_BU)


def select_batch_topk(
    model: SparseAutoencoder, xc_BD: Tensor, dead_units: Tensor | None = None
) -> Selection:
    """The k * B largest of a batch in training (and the pre-activations of `dead_units`,
    for AuxK); the running threshold at inference."""
    assert model.cfg.k is not None
    n_keep = model.cfg.k * xc_BD.shape[0]
    in_lanes = model.training and batch_topk_selection.applies(xc_BD, model.W_enc, n_keep)
    if in_lanes:  # above a cut-off guessed from the previous step, in the matmul's lanes
        found = batch_topk_selection.select(
            model, xc_BD, model.W_enc, model.b_enc, n_keep, dead_units
        )
        if found is not None:
            (units, offsets, cutoff, values), dead_BU = found
            return Selection(None, units, offsets, values, cutoff, dead_BU)
    with torch.no_grad():
        pre_BU = affine_preacts(xc_BD, model.W_enc, model.b_enc, model.matmul_dtype)
        if model.training:
            if in_lanes:
                batch_topk_selection.remember(model, pre_BU, n_keep)
            if not distributed.is_global() and sparse_kernels.available(pre_BU):
                with matmul_threads():  # one pass over the batch: all threads, as top-k
                    kernel_found = sparse_kernels.batch_topk(pre_BU, n_keep)
                if kernel_found is not None:  # its values too: no gather from pre_BU
                    units, offsets, cutoff, values = kernel_found
                    return Selection(pre_BU, units, offsets, values, cutoff)
            select = distributed.global_batch_topk if distributed.is_global() else batch_topk_units
            units, offsets, batch_threshold = select(pre_BU, model.cfg.k)
            batch_threshold = batch_threshold.to(xc_BD.dtype)  # from a bfloat16 matmul too
            return Selection(pre_BU, units, offsets, None, batch_threshold)
        threshold = model.threshold
        assert threshold is not None
        keep = (pre_BU > threshold) & (pre_BU > 0)
        rows, units = keep.nonzero(as_tuple=True)
        counts = torch.bincount(rows, minlength=xc_BD.shape[0])
        return Selection(pre_BU, units, torch.cumsum(counts, 0) - counts, None, None)


def sparse_reconstruction(
    model: SparseAutoencoder, x_BD: Tensor, codes: SparseCodes
) -> tuple[Tensor, Tensor]:
    """(x_hat, fvu) of sparse codes: one compiled pass on CPU (sae/sparse_residual.py),
    else the decode and `fvu_of` in torch ops (also for data-parallel, global batches)."""
    fused = None
    if not distributed.is_global():
        fused = sparse_residual.reconstruct(codes, model.W_dec, model.b_dec, x_BD)
    if fused is None:
        x_hat_BD = decode_sparse(codes, model.W_dec) + model.b_dec
        return x_hat_BD, fvu_of(x_BD, x_hat_BD)[0]
    x_hat_BD, squared_error, total_var = fused
    return x_hat_BD, squared_error / total_var


def sparse_output(
    model: SparseAutoencoder,
    x_BD: Tensor,
    step: SparseStep,
    x_hat_BD: Tensor,
    dead_units: Tensor | None,
    k_aux: int | None,
    extra_loss: Tensor | None = None,
    fvu: Tensor | None = None,
) -> TrainOutput:
    """TrainOutput of a sparse step whose reconstruction is `x_hat_BD`, with AuxK over
    `dead_units` (`auxk.aux_units`; None: no AuxK term); `fvu` when already known."""
    codes = step.codes
    if fvu is None:
        fvu, _ = fvu_of(x_BD, x_hat_BD)
    l0 = (codes.values > 0).sum().float().detach() / x_BD.shape[0]
    aux_fvu = fvu.new_zeros(())
    if dead_units is not None:
        selection = step.selection
        if selection.dead_BU is not None:
            dead_BU = selection.dead_BU
        elif selection.pre_BU is not None:
            dead_BU = selection.pre_BU[:, dead_units]
        else:  # a selection that kept neither: those columns again
            with torch.no_grad():
                dead_BU = torch.addmm(
                    model.b_enc[dead_units], step.xc_BD, model.W_enc[:, dead_units]
                )
        aux_fvu = aux_fvu_of(model, x_BD, step.xc_BD, x_hat_BD, dead_units, dead_BU, k_aux)
    zero = fvu.new_zeros(())
    batch_threshold = step.selection.batch_threshold
    return TrainOutput(x_hat_BD, codes, fvu, zero, aux_fvu, l0, batch_threshold, extra_loss)


class TopKForward:
    """topk: the k largest pre-activations of each sample (ReLU'd)."""

    def encode(self, model: SparseAutoencoder, pre_BU: Tensor) -> Tensor:
        assert model.cfg.k is not None
        values_BK, units_BK = pre_BU.topk(model.cfg.k, dim=1, sorted=False)
        # without autograd, the pre-activations' own memory holds the codes (a second
        # B x n_units allocation is fresh pages to fault in on every chunk)
        codes_BU = torch.zeros_like(pre_BU) if pre_BU.requires_grad else pre_BU.zero_()
        return codes_BU.scatter_(1, units_BK, torch.relu(values_BK))

    def train(
        self, model: SparseAutoencoder, x_BD: Tensor, dead_mask: Tensor | None, k_aux: int | None
    ) -> TrainOutput:
        dead_units = aux_units(model, dead_mask)  # their columns kept apart for AuxK
        step = sparse_codes(model, x_BD, lambda m, xc: select_topk(m, xc, dead_units))
        x_hat_BD, fvu = sparse_reconstruction(model, x_BD, step.codes)
        return sparse_output(model, x_BD, step, x_hat_BD, dead_units, k_aux, fvu=fvu)


class BatchTopKForward:
    """batchtopk: the k * B largest pre-activations of a batch; its running threshold
    (a JumpReLU) at inference."""

    def encode(self, model: SparseAutoencoder, pre_BU: Tensor) -> Tensor:
        return threshold_gate(model, pre_BU)

    def gate(self, model: SparseAutoencoder) -> Tensor:
        return threshold_cut(model)

    def train(
        self, model: SparseAutoencoder, x_BD: Tensor, dead_mask: Tensor | None, k_aux: int | None
    ) -> TrainOutput:
        dead_units = aux_units(model, dead_mask)  # their columns kept apart for AuxK
        step = sparse_codes(model, x_BD, lambda m, xc: select_batch_topk(m, xc, dead_units))
        x_hat_BD, fvu = sparse_reconstruction(model, x_BD, step.codes)
        return sparse_output(model, x_BD, step, x_hat_BD, dead_units, k_aux, fvu=fvu)


RELU = ReLUForward()
TOPK = TopKForward()
BATCHTOPK = BatchTopKForward()
JUMPRELU = JumpReLUForward()
